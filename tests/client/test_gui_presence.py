"""Who joined and who left, in the Tk window's console; known users who
are away in its peer list, written to (offline delivery)."""

from __future__ import annotations

import os

from twisted.internet import reactor

from muca.client.client import ChatClient
from muca.client.gui import pane_text
from tests.support.client import HENRY, MARY, PETER, TONY
from tests.support.gui import GuiTestCase, first_line, message_text
from tests.support.twistd import fresh_directory

PASSWORDS = {"Tony@hku.hk": "t", "mary@hku.hk": "m", "henry@hku.hk": "h"}
AUTH = ("--auth", "memory:" + ":".join(f"{u}:{p}" for u, p in PASSWORDS.items()))


class PresenceLineTests(GuiTestCase):
    async def test_the_console_names_who_joined_and_who_left(self) -> None:
        tony = await self.joined(TONY)
        await self.until_in("in the chat room, 1 person: Tony", tony.console)
        self.assertEqual(
            sorted(pane_text(tony.console).splitlines()[:2]),
            ["in the chat room, 1 person: Tony", "joined the chat room as Tony"],
        )
        mary = await self.joined(MARY)
        await self.until_in("Mary joined", tony.console)
        await self.until_in("in the chat room, 2 people", mary.console)
        self.assertIn(
            "in the chat room, 2 people: Tony and Mary",
            pane_text(mary.console).splitlines()[:2],
        )
        tony.log("something else happened")  # the presence line is no longer newest
        await mary.do_leave()
        await self.until_in("Mary left", tony.console)
        self.assertEqual(
            pane_text(tony.console).splitlines()[:3],
            ["Mary left", "something else happened", "Mary joined"],
        )
        self.assertNotIn("peer list updated", pane_text(tony.console))

    async def test_a_room_of_forty_filling_up_takes_one_line(self) -> None:
        tony = await self.joined(TONY, geometry="650x480+0+0")
        await self.until_in("in the chat room", tony.console)
        before = len(pane_text(tony.console).splitlines())
        for number in range(39):
            client = ChatClient(reactor, f"User{number:02}", f"user{number:02}@hku.hk")
            self.addCleanup(client.leave)
            await client.connect_tcp("127.0.0.1", self.port)
            await client.join()
        await self.until(lambda: tony.peer_list.size() == 40, "40 names")
        lines = pane_text(tony.console).splitlines()
        self.assertEqual(lines[0], "User00, User01, User02 and 36 others joined")
        self.assertEqual(len(lines), before + 1)
        self.root.update()
        self.save_screenshot("gui-presence.png")


class HistoryGuiTestCase(GuiTestCase):
    """A server that keeps a history in SQLite (and, with ``auth``, --auth)."""

    auth = False

    async def setUp(self) -> None:
        database = os.path.join(fresh_directory(self), "history.db")
        self.server_args = (*(AUTH if self.auth else ()), "--db", database)
        await super().setUp()


class AwayTests(HistoryGuiTestCase):
    auth = True

    async def test_a_user_who_left_is_listed_away_and_gets_the_message_later(
        self,
    ) -> None:
        tony = await self.joined(TONY, password="t", geometry="650x480+0+0")
        mary = await self.joined(MARY, password="m", geometry="650x480+660+0")
        await self.until_in("Mary (mary@hku.hk)", tony.peer_list)
        await mary.do_leave()
        await self.until_in("Mary (mary@hku.hk) - away", tony.peer_list)
        self.assertEqual(
            pane_text(tony.peer_list).splitlines(),
            ["Tony (Tony@hku.hk)", "Mary (mary@hku.hk) - away"],
        )
        self.type_into(tony, "Mary", "read this when you are back")
        self.assertTrue(tony.do_send())
        self.assertEqual(
            first_line(tony.console),
            (
                "note: Mary is away and will get it on joining again;"
                " sent to Mary as PRIVATE",
                ("note",),
            ),
        )
        self.root.update()
        self.save_screenshot("gui-away.png")
        back = await self.joined(MARY, password="m")
        await self.until_in("read this when you are back", back.messages)
        self.assertEqual(
            message_text(back.messages), "[From: Tony] read this when you are back\n"
        )
        await self.until(lambda: "away" not in pane_text(tony.peer_list), "back")
        self.assertEqual(
            pane_text(tony.peer_list).splitlines(),
            ["Tony (Tony@hku.hk)", "Mary (mary@hku.hk)"],
        )

    async def test_known_users_away_are_listed_on_joining(self) -> None:
        """Needs the server's KNOWN (capability ``known``, branch history)."""
        mary = await self.joined(MARY, password="m")
        henry = await self.joined(HENRY, password="h")
        await mary.do_leave()
        await henry.do_leave()
        tony = await self.joined(TONY, password="t")
        await self.until_in("- away", tony.peer_list)
        self.assertEqual(
            pane_text(tony.peer_list).splitlines(),
            [
                "Tony (Tony@hku.hk)",
                "Henry (henry@hku.hk) - away",
                "Mary (mary@hku.hk) - away",
            ],
        )
        self.type_into(tony, "Henry, Mary", "for you two")
        self.assertTrue(tony.do_send())
        self.assertIn("Henry, Mary are away", first_line(tony.console)[0])


class DepartedNicknameTests(HistoryGuiTestCase):
    async def test_history_names_a_departed_sender_by_the_nickname_it_used(
        self,
    ) -> None:
        """Needs the server's UN on replayed messages (branch history)."""
        mary = await self.joined(MARY)
        self.type_into(mary, "ALL", "said as Mary")
        self.assertTrue(mary.do_send())
        await mary.do_leave()
        # The same user id comes back as someone else and leaves again.
        maria = await self.joined(("Maria", MARY[1]))
        await maria.do_leave()
        peter = await self.joined(PETER)
        await self.until_in("said as Mary", peter.messages)
        self.assertEqual(message_text(peter.messages), "[From: Mary] said as Mary\n")
