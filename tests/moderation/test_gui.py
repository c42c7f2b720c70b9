"""Moderation in the Tk window, on Xvfb, against a real ``twistd -n muca
--auth db`` (SQLite): ``/mute``, ``/unmute``, ``/kick``, ``/ban``,
``/slow``, ``/delete`` and ``/report`` in the room the window is in, each
answered with one console line (the server's notice, or its refusal), and
a usage line for a mistyped command."""

from __future__ import annotations

from muca.client.gui import ChatWindow, pane_text
from tests.support.accounts import AccountsCase, SQLiteAccounts
from tests.support.gui import GuiTestCase
from tests.support.twistd import start_twistd

SECRET = "correct horse battery"
ANN = ("Ann", "ann@hku.hk")
BOB = ("Bob", "bob@hku.hk")


class ModerationWindowTests(SQLiteAccounts, AccountsCase, GuiTestCase):
    async def setUp(self) -> None:
        await GuiTestCase.setUp(self)
        SQLiteAccounts.setUp(self)
        for uid in (ANN[1], BOB[1]):
            await self.admin("user", "add", uid, stdin=SECRET)
        self.twistd = await start_twistd(self, "--auth", "db", "--db", self.db)

    def console(self, window: ChatWindow) -> list[str]:
        return pane_text(window.console).splitlines()

    async def command(self, window: ChatWindow, text: str, answer: str) -> None:
        """Type ``text``, press SEND, wait for ``answer`` in the console."""
        self.type_into(window, "", text)
        window.send_button.invoke()
        await self.until(
            lambda: answer in self.console(window)[:4],
            f"{answer!r}, the console: {self.console(window)[:4]}",
        )

    async def joined(self, user: tuple[str, str]) -> ChatWindow:
        window = self.window(user, port=self.twistd.port, password=SECRET)
        await window.do_join()
        await window.client.enter("maths")
        self.assertEqual(window.room, "maths")
        return window

    async def test_slash_commands_with_one_line_answers(self) -> None:
        ann = await self.joined(ANN)
        bob = await self.joined(BOB)
        await self.command(ann, "/mute bob@hku.hk", "[ERROR] use /mute UID 10m")
        await self.command(
            ann, "/mute bob@hku.hk 10m", "note: #maths: Ann muted Bob for 10 minutes"
        )
        await self.command(
            bob,
            "/kick ann@hku.hk",
            "[ERROR] server says NOT_ALLOWED: only the moderators of the room"
            " 'maths' may (KICK)",
        )
        await self.command(ann, "/unmute bob@hku.hk", "note: #maths: Ann unmuted Bob")
        await self.command(
            ann, "/slow 30", "note: #maths: Ann set slow mode to 30 seconds"
        )
        await self.command(
            ann, "/ban bob@hku.hk 1h", "note: #maths: Ann banned Bob for 1 hour"
        )
        await self.command(ann, "/delete x", "[ERROR] use /delete ID")
        await self.command(ann, "/report 1", "[ERROR] use /report ID reason")
        await self.command(
            ann,
            "/delete 999",
            "[ERROR] server says NO_SUCH_MESSAGE: there is no message 999",
        )
        await self.command(
            bob,
            "/report 999 spam",
            "[ERROR] server says NO_SUCH_MESSAGE: there is no message 999",
        )
        await self.command(ann, "/slow 0", "note: #maths: Ann turned slow mode off")
