"""ChatClient and the history, as a bot sees it through its observer: what
was said before it joined comes as replayed messages with their ids and
times, older pages on demand, and after a lost connection the next JOIN
asks only for what it missed (SINCE), so nothing is reported twice."""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from muca.client.observer import ReceivedMessage
from tests.support import start_service
from tests.support.client import (
    HENRY,
    MARY,
    TONY,
    ClientTestMixin,
    RecordingObserver,
    listen_loopback,
)
from tests.support.servers import RecordingRelay


class HistoryObserver(RecordingObserver):
    """Also records the end of each replay or scroll-back."""

    def history_end(self, more: bool) -> None:
        self.events.append(("history end", more))


def texts(messages: list[ReceivedMessage]) -> list[tuple[str, bool]]:
    return [(m.text, m.history) for m in messages]


class ClientHistoryTests(ClientTestMixin, TestCase):
    """A server with an SQLite history of the test's own, replaying three."""

    async def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        (listening,) = await start_service(
            self,
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--db",
            os.path.join(directory, "muca.db"),
            "--history-replay",
            "3",
        )
        self.port = listening.getHost().port

    async def test_what_was_said_comes_replayed_with_ids_and_times(self) -> None:
        mary, _ = await self.client(MARY)
        _, henry_heard = await self.client(HENRY)
        for n in range(1, 6):
            mary.send([], f"said {n}")
        await henry_heard.next_of("message", 5)  # delivered, so stored

        tony, seen = await self.client(TONY, observer=HistoryObserver())
        await seen.next_of("history end")
        replayed = seen.of("message")
        self.assertEqual(
            texts(replayed), [("said 3", True), ("said 4", True), ("said 5", True)]
        )
        self.assertEqual([m.ident for m in replayed], [3, 4, 5])
        self.assertTrue(all(m.timestamp_ms and m.timestamp_ms > 0 for m in replayed))
        self.assertEqual(seen.of("history end"), [True])  # older ones exist

        self.assertTrue(tony.load_older(limit=10))
        await seen.next_of("history end", 2)
        self.assertEqual(
            texts(seen.of("message")[3:]), [("said 1", True), ("said 2", True)]
        )
        self.assertEqual(seen.of("history end"), [True, False])
        self.assertFalse(tony.load_older())  # nothing older: not even asked

        mary.send([], "live now")
        live = await seen.next_of("message", 6)
        self.assertEqual((live.text, live.history, live.ident), ("live now", False, 6))

    async def test_after_a_lost_connection_only_the_missed_come_once(self) -> None:
        relay = RecordingRelay("127.0.0.1", self.port)
        relay_port = await listen_loopback(self, relay)
        mary, _ = await self.client(MARY)
        _, henry_heard = await self.client(HENRY)
        for n in range(1, 5):
            mary.send([], f"before {n}")
        await henry_heard.next_of("message", 4)  # delivered, so stored

        tony, seen = await self.client(
            TONY, observer=HistoryObserver(), port=relay_port
        )
        await seen.next_of("history end")
        self.assertEqual(
            texts(seen.of("message")),
            [("before 2", True), ("before 3", True), ("before 4", True)],
        )
        relay.connections[0].transport.loseConnection()
        await seen.next_of("lost")
        mary.send([], "while away 1")
        mary.send([], "while away 2")
        await henry_heard.next_of("message", 6)

        sent_before = len(relay.sent)
        await tony.connect_tcp("127.0.0.1", relay_port)
        await tony.join()
        await seen.next_of("history end", 2)
        # The JOIN asked for what came after the last id Tony saw ...
        self.assertIn(b'"SINCE":4', bytes(relay.sent[sent_before:]).replace(b" ", b""))
        # ... and got exactly that, once, in order; then live messages again.
        mary.send([], "back")
        live = await seen.next_of("message", 6)
        self.assertEqual((live.text, live.history, live.ident), ("back", False, 7))
        self.assertEqual(
            texts(seen.of("message")[3:]),
            [("while away 1", True), ("while away 2", True), ("back", False)],
        )

    async def test_older_messages_are_asked_for_per_room(self) -> None:
        mary, _ = await self.client(MARY)
        _, henry_heard = await self.client(HENRY)
        await mary.enter("dev")
        for n in range(1, 6):
            mary.send([], f"dev {n}", room="dev")
        mary.send([], "general 1")
        await henry_heard.next_of("message", 1)  # in general: stored after dev's

        tony, seen = await self.client(TONY, observer=HistoryObserver())
        await seen.next_of("history end")
        self.assertEqual(texts(seen.of("message")), [("general 1", True)])
        # Nothing older in the default room: not even asked.
        self.assertFalse(tony.load_older())
        await tony.enter("dev")
        await seen.next_of("history end", 2)
        replayed = seen.of("message")[1:]
        self.assertEqual(
            [(m.text, m.room, m.history) for m in replayed],
            [("dev 3", "dev", True), ("dev 4", "dev", True), ("dev 5", "dev", True)],
        )
        self.assertEqual(seen.of("history end"), [False, True])
        self.assertEqual((tony.has_older(), tony.has_older(room="dev")), (False, True))
        self.assertTrue(tony.load_older(limit=10, room="#Dev"))
        await seen.next_of("history end", 3)
        self.assertEqual(
            [(m.text, m.room) for m in seen.of("message")[4:]],
            [("dev 1", "dev"), ("dev 2", "dev")],
        )
        self.assertEqual(seen.of("history end"), [False, True, False])
        self.assertFalse(tony.load_older(room="dev"))
        self.assertEqual(
            (tony.has_older(), tony.has_older(room="dev"), tony.has_older(own=True)),
            (False, False, False),
        )
        # Our own private messages: none on a server without --auth, so the
        # JOIN's replay said nothing older exists.
        self.assertFalse(tony.load_older(own=True))
