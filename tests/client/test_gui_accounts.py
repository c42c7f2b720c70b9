"""Accounts in the Tk window, on Xvfb, against a real ``twistd -n muca --auth
db --register invite`` (SQLite) with invitations from ``muca-admin invite
create``: ``/register CODE`` with the PASSWORD field's password, then JOIN;
``/password`` in its masked dialog and ``/password OLD NEW``; each answer,
and each refusal with its code, one console line."""

from __future__ import annotations

from muca.client.gui import ChatWindow, pane_text
from tests.support.accounts import AccountsCase, SQLiteAccounts
from tests.support.client import MARY, TONY
from tests.support.gui import GuiTestCase
from tests.support.twistd import start_twistd

SECRET = "correct horse battery"
RULE = (
    "a password needs at least 8 characters (at most 1024) and must not be the user id"
)
#: A password without spaces, for ``/password OLD NEW``.
OLD = "open-sesame-42"
CREATED = "account created: you can join with it (Tony@hku.hk); press JOIN"


class AccountWindowTests(SQLiteAccounts, AccountsCase, GuiTestCase):
    async def setUp(self) -> None:
        await GuiTestCase.setUp(self)
        SQLiteAccounts.setUp(self)
        # (GuiTestCase's self.server is its in-process server's factory.)
        self.twistd = await start_twistd(
            self, "--auth", "db", "--db", self.db, "--register", "invite"
        )

    def console(self, window: ChatWindow) -> list[str]:
        return pane_text(window.console).splitlines()

    async def command(self, window: ChatWindow, text: str, answer: str) -> None:
        """Type ``text`` in the message box, press SEND, wait for ``answer``
        as the console's newest line."""
        self.type_into(window, "", text)
        window.send_button.invoke()
        await self.until(
            lambda: self.console(window)[0] == answer,
            f"{answer!r}, the console: {self.console(window)[:3]}",
        )

    async def test_register_with_an_invitation_then_join(self) -> None:
        code = (await self.admin("invite", "create")).strip()
        tony = self.window(TONY, port=self.twistd.port, geometry="+0+0")
        tony.master.deiconify()
        self.root.update()
        # No password yet: the PASSWORD field asks for it.
        self.type_into(tony, "", f"/register {code}")
        tony.send_button.invoke()
        self.assertEqual(
            self.console(tony)[0],
            "type the password for your new account in the PASSWORD field"
            f" above, then /register {code} again",
        )
        self.root.update()
        self.assertTrue(tony.password_entry.winfo_ismapped())
        self.assertEqual(tony.password_entry.cget("show"), "*")
        tony.password_entry.insert(0, "short")
        await self.command(
            tony,
            f"/register {code}",
            f"[ERROR] cannot create the account: too short: {RULE} (WEAK_PASSWORD)",
        )
        self.assertEqual(tony.message_entry.get("1.0", "end-1c"), "")
        tony.password_entry.delete(0, "end")
        tony.password_entry.insert(0, SECRET)
        await self.command(
            tony,
            "/register not-a-code",
            "[ERROR] cannot create the account: this invitation code is unknown,"
            " used up, expired or revoked (BAD_INVITE)",
        )
        await self.command(tony, f"/register {code}", CREATED)
        await self.until(lambda: not tony.client.connected, "REGISTER's connection")
        self.assertEqual(tony.join_button.cget("state"), "normal")
        tony.join_button.invoke()
        await self.until(lambda: tony.client.joined, "join with the new account")
        await self.until_in("Tony (Tony@hku.hk)", tony.peer_list)
        self.assertIn("joined the chat room as Tony", self.console(tony))
        # Joined, /register is refused in a line; another account with the
        # same user id is refused by the server.
        await self.command(
            tony,
            f"/register {code}",
            "[ERROR] already joined: an account is made before joining; LEAVE first",
        )
        again = self.window(TONY, port=self.twistd.port, password=SECRET)
        other = (await self.admin("invite", "create")).strip()
        await self.command(
            again,
            f"/register {other}",
            "[ERROR] cannot create the account: this user id has an account"
            " already (UID_TAKEN)",
        )

    async def test_register_alone_needs_a_code_on_an_invite_server(self) -> None:
        mary = self.window(MARY, port=self.twistd.port, password="another secret")
        await self.command(
            mary,
            "/register",
            "[ERROR] cannot create the account: this server registers by"
            " invitation: REGISTER needs INVITE, a code from its admin (BAD_INVITE)",
        )

    async def test_password_changed_in_the_dialog_and_on_the_command_line(
        self,
    ) -> None:
        await self.admin("user", "add", "Tony@hku.hk", stdin=OLD + "\n")
        tony = self.window(TONY, port=self.twistd.port, geometry="+0+0")
        tony.master.deiconify()
        await self.command(
            tony,
            "/password",
            "[ERROR] not connected: JOIN with your password before changing it",
        )
        tony.password_entry.insert(0, OLD)
        tony._asking_password = True
        await tony.do_join()
        self.assertTrue(tony.client.joined)

        self.type_into(tony, "", "/password")
        tony.send_button.invoke()
        dialog = tony.password_dialog
        assert dialog is not None
        self.root.update()
        self.assertTrue(dialog.top.winfo_ismapped())
        self.assertEqual(dialog.top.title(), "Change password - Tony@hku.hk")
        self.assertEqual(
            (dialog.old_entry.cget("show"), dialog.new_entry.cget("show")), ("*", "*")
        )
        # Nothing typed: the dialog says what is missing and stays.
        dialog.change_button.invoke()
        self.assertEqual(
            dialog.hint.cget("text"), "type your old password and the new one"
        )
        dialog.old_entry.insert(0, "not my password")
        dialog.new_entry.insert(0, "a new password")
        self.assertEqual(dialog.hint.cget("text"), "")
        self.root.update()
        self.save_screenshot("gui-password.png")
        dialog.new_entry.focus_force()
        dialog.new_entry.event_generate("<Return>")
        self.assertFalse(dialog.open)
        await self.until(
            lambda: (
                self.console(tony)[0]
                == "[ERROR] cannot change the password: OLD is not your password"
                " (AUTH_FAILED)"
            ),
            "the refusal",
        )
        await self.command(
            tony,
            f"/password {OLD} Tony@hku.hk",
            "[ERROR] cannot change the password: it is the user id:"
            f" {RULE} (WEAK_PASSWORD)",
        )
        await self.command(
            tony,
            "/password only-one",
            "[ERROR] /password takes your old password and the new one:"
            " /password OLD NEW, or /password alone to type them masked",
        )
        await self.command(
            tony,
            f"/password {OLD} a-new-password",
            "password changed: join with the new one from now on",
        )
        # LEAVE and JOIN again: the window joins with the new password.
        await tony.do_leave()
        await tony.do_join()
        self.assertTrue(tony.client.joined)
        old = self.window(TONY, port=self.twistd.port, password=OLD)
        await old.do_join()
        self.assertFalse(old.client.joined)
        self.assertIn(
            "[ERROR] join refused: wrong or missing password", self.console(old)
        )
