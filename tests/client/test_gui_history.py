"""The window and the history: a window that joins after a conversation
shows it (times, dimmed, in id order), loads older messages, and catches up
after a broken connection; the screenshot of it."""

from __future__ import annotations

import datetime
import os
import re
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from muca.client.gui import clock_time, pane_text
from tests.support import RawClient, connect, join, send
from tests.support.client import MARY, TONY, settle
from tests.support.gui import GuiTestCase, message_text

DB = os.path.join(tempfile.mkdtemp(prefix="muca-gui-history-"), "history.db")

ALICE = ("Alice", "alice@hku.hk")
BOB = ("Bob", "bob@hku.hk")
CONVERSATION = [
    (ALICE, [], "Morning all, the review is at ten."),
    (BOB, [], "Thanks, I'll bring the slides."),
    (ALICE, ["bob@hku.hk"], "Can you print two copies?"),
    (BOB, [], "Room 301 or 305?"),
    (ALICE, [], "301, the big one."),
    (BOB, [], "See you there."),
]


class HistoryWindowTests(GuiTestCase):
    """A server with a history (an SQLite file of the test's own)."""

    server_args = ("--db", DB, "--history-replay", "4")

    async def setUp(self) -> None:
        if os.path.exists(DB):
            os.remove(DB)
        await super().setUp()

    async def converse(self) -> None:
        """Alice and Bob (plain clients) talk before anybody opens a window."""
        alice = await connect(self, self.port)
        alice.send_json(join(*ALICE))
        await alice.next_objects(2)
        bob = await connect(self, self.port)
        bob.send_json(join(*BOB))
        await bob.next_objects(2)
        await alice.next_object()
        clients = {ALICE: alice, BOB: bob}
        for who, to, text in CONVERSATION:
            clients[who].send_json(send(text, to, who[1]))
            other = bob if who == ALICE else alice
            await other.next_object()

    async def test_joining_after_a_conversation_shows_it_and_older_on_demand(
        self,
    ) -> None:
        await self.converse()
        tony = self.window(TONY, geometry="650x480+0+0")
        await tony.do_join()
        await self.until_in("See you there.", tony.messages)
        await self.until(
            lambda: tony.older_button.cget("state") == "normal", "Load older"
        )
        # The last four broadcasts Tony may read (not Alice's private one:
        # no --auth), newest at the top, dimmed in the broadcast colour.
        self.assertEqual(
            message_text(tony.messages).splitlines(),
            [
                "[From: Bob] See you there.",
                "[From: Alice] 301, the big one.",
                "[From: Bob] Room 301 or 305?",
                "[From: Bob] Thanks, I'll bring the slides.",
            ],
        )
        lines = pane_text(tony.messages).splitlines()
        now = clock_time(None)
        self.assertTrue(all(line.startswith(now[:3]) for line in lines), lines)
        self.assertTrue(all(re.match(r"\d\d:\d\d \[From", line) for line in lines))
        self.assertEqual(
            {tony.messages.tag_names(f"{n}.0") for n in range(1, 5)},
            {("broadcast-history",)},
        )
        self.assertEqual(tony.unread, 0)  # said before Tony came
        tony.older_button.invoke()
        await self.until_in("Morning all", tony.messages)
        await self.until(
            lambda: tony.older_button.cget("state") == "disabled", "no more"
        )
        self.assertEqual(
            message_text(tony.messages).splitlines()[-1],
            "[From: Alice] Morning all, the review is at ten.",
        )
        # A live message goes on top, in its full colour.
        mary = await self.joined(MARY, geometry="650x480+660+0")
        self.type_into(mary, "ALL", "Hello, I'm late, what did I miss?")
        self.assertTrue(mary.do_send())
        await self.until_in("what did I miss", tony.messages)
        self.assertEqual(tony.messages.tag_names("1.0"), ("broadcast",))
        await settle(3)
        self.root.update()
        self.save_screenshot("history.png")

    async def test_join_after_a_broken_connection_catches_up(self) -> None:
        alice = await connect(self, self.port)  # a witness: hears what is sent
        alice.send_json(join(*ALICE))
        await alice.next_objects(2)
        tony = await self.joined(TONY)
        mary = await self.joined(MARY)
        self.type_into(mary, "ALL", "before the break")
        mary.do_send()
        await self.until_in("before the break", tony.messages)
        tony_connection = next(
            c for c in self.server.connections if c.member and c.member.uid == TONY[1]
        )
        tony_connection.close()
        await self.until(lambda: not tony.client.connected, "the break")
        self.type_into(mary, "ALL", "while you were away")
        mary.do_send()
        await heard(alice, "while you were away")  # delivered, so stored
        await tony.do_join()
        await self.until_in("while you were away", tony.messages)
        self.type_into(mary, "ALL", "welcome back")
        mary.do_send()
        await self.until_in("welcome back", tony.messages)
        # Caught up with SINCE: the missed one, once; nothing shown twice
        # (up to Mary's next message, live).
        self.assertEqual(
            message_text(tony.messages).splitlines(),
            [
                "[From: Mary] welcome back",
                "[From: Mary] while you were away",
                "[From: Mary] before the break",
            ],
        )
        self.assertEqual(tony.messages.tag_names("1.0"), ("broadcast",))
        self.assertEqual(tony.messages.tag_names("2.0"), ("broadcast-history",))


async def heard(client: RawClient, text: str) -> None:
    """Wait until ``client`` receives a message with this text."""
    while True:
        obj = await client.next_object()
        if obj.get("CMD") == "MSG" and obj.get("MSG") == text:
            return


class ClockTimeTests(SynchronousTestCase):
    """The time in front of each message."""

    def test_today_is_hours_and_minutes_another_day_has_its_date(self) -> None:
        now = datetime.datetime(2026, 3, 14, 15, 30)
        today = datetime.datetime(2026, 3, 14, 9, 5).timestamp() * 1000
        before = datetime.datetime(2026, 3, 13, 23, 59).timestamp() * 1000
        self.assertEqual(clock_time(int(today), now), "09:05")
        self.assertEqual(clock_time(int(before), now), "2026-03-13 23:59")
        self.assertEqual(clock_time(None, now), "15:30")
