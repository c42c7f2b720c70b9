"""The ids a fresh single-process bus gives: the first accepted message of
a room that never had one is ``ID`` 1."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from muca.protocol.messages import ALL, ChatMessage
from muca.server.bus import LocalBus


class FreshBusTests(SynchronousTestCase):
    def test_a_fresh_bus_numbers_messages_from_one(self) -> None:
        bus = LocalBus(Clock())
        drafts = [ChatMessage(0, 5, "t", ALL, (), text) for text in ("a", "b")]
        accepted = self.successResultOf(bus.publish(drafts))
        self.assertEqual([(m.id, m.text) for m in accepted], [(1, "a"), (2, "b")])
        self.assertEqual(bus.last_id, 2)
        self.assertEqual(accepted[0].payload()["ID"], 1)
