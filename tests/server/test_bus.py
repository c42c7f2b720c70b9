"""Message ids and the bus: every delivered ``MSG`` carries an ``ID`` given
at acceptance, increasing, and every accepted message and roster change
reaches the node through the bus."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.protocol.messages import ALL, PRIVATE, ChatMessage, Join
from muca.server.bus import LocalBus
from muca.server.room import Room
from muca.store.sqlite import SQLiteStore
from tests.support import MemoryServer, send
from tests.support.server import HENRY, MARY, TONY, ServerTestCase
from tests.support.twistd import fresh_directory


class Recorder:
    """A bus listener that keeps what it is given."""

    def __init__(self) -> None:
        self.delivered: list[ChatMessage] = []
        self.refused: list[tuple[str, str]] = []
        self.roster_changes = 0

    def deliver(self, messages: Sequence[ChatMessage]) -> None:
        self.delivered.extend(messages)

    def not_accepted(self, messages: Sequence[ChatMessage], failure: Failure) -> None:
        self.refused += [(m.text, failure.getErrorMessage()) for m in messages]

    def roster_changed(self) -> None:
        self.roster_changes += 1


def draft(text: str) -> ChatMessage:
    return ChatMessage(0, 1_700_000_000_000, "tony@hku.hk", ALL, (), text)


class LocalBusTests(SynchronousTestCase):
    """The single-process bus on its own."""

    def test_ids_continue_after_the_last_one_given(self) -> None:
        bus = LocalBus(Clock(), last_id=41)
        recorder = Recorder()
        bus.attach(recorder)
        accepted = self.successResultOf(bus.publish([draft("a"), draft("b")]))
        self.assertEqual([m.id for m in accepted], [42, 43])
        self.successResultOf(bus.publish([draft("c")]))
        self.assertEqual(
            [(m.id, m.text) for m in recorder.delivered],
            [(42, "a"), (43, "b"), (44, "c")],
        )

    def test_every_listener_gets_every_message_and_roster_change(self) -> None:
        bus = LocalBus(Clock())
        first, second = Recorder(), Recorder()
        bus.attach(first)
        bus.attach(second)
        bus.publish([draft("hello")])
        bus.roster_changed()
        for recorder in (first, second):
            self.assertEqual([m.text for m in recorder.delivered], ["hello"])
            self.assertEqual(recorder.roster_changes, 1)


class LocalBusRosterTests(SynchronousTestCase):
    """Joins and leaves through the single-process bus."""

    def test_a_leave_is_announced_once_and_a_second_one_is_refused(self) -> None:
        bus, room, recorder = LocalBus(Clock()), Room(), Recorder()
        bus.attach(recorder)
        member = bus.join(room, object(), Join("Tony", "tony@hku.hk"))
        self.assertEqual(recorder.roster_changes, 1)
        self.assertTrue(bus.leave(room, member))
        self.assertFalse(bus.leave(room, member))
        self.assertEqual(recorder.roster_changes, 2)
        self.assertNotIn("tony@hku.hk", room)


class MessageIdTests(ServerTestCase):
    """What clients see of message ids."""

    def test_every_delivered_message_carries_an_increasing_id(self) -> None:
        tony, mary, henry = self.joined(TONY, MARY, HENRY)
        tony.send_json(send("one", [], TONY[1]))
        mary.send_json(send("two", [HENRY[1]], MARY[1]))
        tony.send_json(send("three", [MARY[1], HENRY[1]], TONY[1]))
        got = henry.take()
        self.assertEqual([m["MSG"] for m in got], ["one", "two", "three"])
        ids = [m["ID"] for m in got]
        self.assertEqual(ids, sorted(set(ids)))
        self.assertTrue(all(isinstance(i, int) and i > 0 for i in ids), ids)
        # Mary shares two of them: the same ids, in the same order.
        self.assertEqual(
            [(m["MSG"], m["ID"]) for m in mary.take()],
            [("one", ids[0]), ("three", ids[2])],
        )

    def test_one_message_has_one_id_for_all_its_recipients(self) -> None:
        tony, mary, henry = self.joined(TONY, MARY, HENRY)
        tony.send_json(send("hi all", [], TONY[1]))
        self.assertEqual(mary.take()[0]["ID"], henry.take()[0]["ID"])

    def test_ids_start_after_the_bus_last_id(self) -> None:
        server = MemoryServer(bus=LocalBus(Clock(), last_id=1000))
        self.addCleanup(server.stop)
        self.server = server
        tony, mary = self.joined(TONY, MARY)
        tony.send_json(send("hi", [MARY[1]], TONY[1]))
        (got,) = mary.take()
        self.assertEqual((got["TYPE"], got["ID"]), (PRIVATE, 1001))

    def test_a_join_reaches_the_node_through_the_bus(self) -> None:
        recorder = Recorder()
        self.server.factory.bus.attach(recorder)
        self.joined(TONY)
        self.assertEqual(recorder.roster_changes, 1)


class StoringBusTests(TestCase):
    """The bus with a store (a real SQLite file): stored before delivered,
    in id order, nothing delivered that was not stored."""

    async def setUp(self) -> None:
        self.store = SQLiteStore(os.path.join(fresh_directory(self), "bus.db"))
        await self.store.open()
        self.addCleanup(self.store.close)
        self.bus = LocalBus(reactor, store=self.store)
        self.recorder = Recorder()
        self.bus.attach(self.recorder)

    async def turn(self, told: int) -> None:
        """Let the reactor end this turn (the bus appends the turn's
        messages) and wait (5 s at most) until the listener was told of
        ``told`` messages in all, delivered or refused (the store writes on
        threads of its own)."""
        for _ in range(500):
            await deferLater(reactor, 0.01 if _ else 0)
            if len(self.recorder.delivered) + len(self.recorder.refused) >= told:
                break

    async def test_messages_are_delivered_in_id_order_once_stored(self) -> None:
        for texts in (["a"], ["b", "c"], ["d"]):
            self.assertIsNone(self.bus.publish([draft(t) for t in texts]))
        self.assertEqual(self.recorder.delivered, [])  # not before it is stored
        await self.turn(4)
        self.assertEqual(
            [(m.id, m.text) for m in self.recorder.delivered],
            [(1, "a"), (2, "b"), (3, "c"), (4, "d")],
        )
        page = await self.store.latest(None, False, 10)
        self.assertEqual([m.text for m in page.messages], ["a", "b", "c", "d"])

    async def test_a_turn_not_stored_is_not_delivered_and_is_refused(self) -> None:
        await self.store.close()
        self.bus.publish([draft("lost 1")])
        self.bus.publish([draft("lost 2")])
        await self.turn(2)
        self.assertEqual(self.recorder.delivered, [])
        closed = f"message database {self.store.path} is not open"
        self.assertEqual(
            self.recorder.refused, [("lost 1", closed), ("lost 2", closed)]
        )
        self.assertTrue(self.bus.failing)

    async def test_an_outage_and_the_recovery_are_logged_once_each(self) -> None:
        await self.store.close()
        with capturedLogs() as events:
            for told, text in enumerate(("lost 1", "lost 2"), 1):
                self.bus.publish([draft(text)])
                await self.turn(told)
            self.assertTrue(self.bus.failing)
            # The database works again (here: a store on the same file).
            self.bus.store = SQLiteStore(self.store.path)
            await self.bus.store.open()
            self.addCleanup(self.bus.store.close)
            for told, text in enumerate(("back 1", "back 2"), 3):
                self.bus.publish([draft(text)])
                await self.turn(told)
        self.assertFalse(self.bus.failing)
        said = [formatEvent(event) for event in events]
        self.assertEqual(len(said), 2, said)
        self.assertEqual(
            said[0],
            "muca: cannot store messages, refusing them until the message "
            f"database works again: message database {self.store.path} is not open",
        )
        self.assertEqual(said[1], "muca: the message database works again")
        self.assertEqual(
            [m.text for m in self.recorder.delivered], ["back 1", "back 2"]
        )
        self.assertEqual(
            [text for text, _ in self.recorder.refused], ["lost 1", "lost 2"]
        )

    async def test_ids_go_on_from_the_stores_last_one(self) -> None:
        await self.store.append([dataclasses.replace(draft("old"), id=7)])
        bus = LocalBus(reactor, store=self.store)
        bus.attach(self.recorder)
        bus.publish([draft("new")])
        await self.turn(1)
        self.assertEqual([m.id for m in self.recorder.delivered], [8])
