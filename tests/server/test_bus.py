"""Message ids and the bus: every delivered ``MSG`` carries an ``ID`` given
at acceptance, increasing, and every accepted message and roster change
reaches the node through the bus."""

from __future__ import annotations

from collections.abc import Sequence

from twisted.trial.unittest import SynchronousTestCase

from muca.protocol.messages import ALL, PRIVATE, ChatMessage
from muca.server.bus import LocalBus
from tests.support import MemoryServer, send
from tests.support.server import HENRY, MARY, TONY, ServerTestCase


class Recorder:
    """A bus listener that keeps what it is given."""

    def __init__(self) -> None:
        self.delivered: list[ChatMessage] = []
        self.roster_changes = 0

    def deliver(self, messages: Sequence[ChatMessage]) -> None:
        self.delivered.extend(messages)

    def roster_changed(self) -> None:
        self.roster_changes += 1


def draft(text: str) -> ChatMessage:
    return ChatMessage(0, 1_700_000_000_000, "tony@hku.hk", ALL, (), text)


class LocalBusTests(SynchronousTestCase):
    """The single-process bus on its own."""

    def test_ids_continue_after_the_last_one_given(self) -> None:
        bus = LocalBus(last_id=41)
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
        bus = LocalBus()
        first, second = Recorder(), Recorder()
        bus.attach(first)
        bus.attach(second)
        bus.publish([draft("hello")])
        bus.roster_changed()
        for recorder in (first, second):
            self.assertEqual([m.text for m in recorder.delivered], ["hello"])
            self.assertEqual(recorder.roster_changes, 1)


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
        server = MemoryServer(bus=LocalBus(last_id=1000))
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
