"""Reading the cluster's stream, in memory: a batch with no recipient
connected to this node is passed over undecoded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from muca.cluster.redisbus import REMOTE, RedisAddress, RedisBus
from muca.protocol.messages import ChatMessage
from muca.server.room import Room
from tests.support import MemoryServer

MARY = ("Mary", "mary@hku.hk")


class Recorder:
    """A bus listener on its own room that keeps what it is given."""

    def __init__(self) -> None:
        self.room = Room()
        self.delivered: list[ChatMessage] = []
        self.passed_to = 0

    def deliver(self, messages: Sequence[ChatMessage]) -> None:
        self.delivered.extend(messages)

    def passed(self, upto: int) -> None:
        self.passed_to = upto


def entry(first: int, routes: list[Any], data: str) -> dict[str, str]:
    """A stream entry of a batch of messages, as the reader gets it."""
    return {"t": "m", "f": str(first), "k": "", "r": json.dumps(routes), "d": data}


ROW = [1_700_000_000_000, MARY[1], "PRIVATE", ["tony@hku.hk"], "hi"]


class PassingOverTests(SynchronousTestCase):
    """A node skips the messages that are all for members of other nodes."""

    def setUp(self) -> None:
        self.bus = RedisBus(RedisAddress("127.0.0.1", 6379, 0))
        self.listener = Recorder()
        self.bus.attach(self.listener)
        self.listener.room.join(REMOTE, *MARY)
        # A member connected here: any object stands for its connection.
        self.listener.room.join(object(), "Tony", "tony@hku.hk")

    def test_a_batch_for_other_nodes_only_is_not_decoded(self) -> None:
        # "d" is not even decoded (it would fail to), but the node's last
        # id moves on all the same.
        self.bus._apply(entry(7, [[MARY[1]], [MARY[1]]], "not decoded"))
        self.assertEqual(self.listener.delivered, [])
        self.assertEqual((self.bus.last_delivered, self.listener.passed_to), (8, 8))

    def test_only_the_messages_with_a_recipient_here_are_delivered(self) -> None:
        broadcast = [1_700_000_000_000, MARY[1], "ALL", [], "hello"]
        rows = [ROW, [*ROW[:3], [MARY[1]], "not for us"], broadcast]
        routes = [["tony@hku.hk"], [MARY[1]], 0]
        self.bus._apply(entry(9, routes, json.dumps(rows)))
        self.assertEqual(
            [(m.id, m.text) for m in self.listener.delivered],
            [(9, "hi"), (11, "hello")],
        )
        self.assertEqual(self.listener.passed_to, 11)

    def test_messages_delivered_before_are_not_again(self) -> None:
        self.bus._apply(entry(9, [["tony@hku.hk"]] * 2, json.dumps([ROW, ROW])))
        self.bus._apply(entry(9, [["tony@hku.hk"]] * 3, json.dumps([ROW] * 3)))
        self.assertEqual([m.id for m in self.listener.delivered], [9, 10, 11])


class ChatFactoryTests(SynchronousTestCase):
    """The node's own last id follows the messages passed over."""

    def test_passed_over_messages_count_as_gone_by(self) -> None:
        bus = RedisBus(RedisAddress("127.0.0.1", 6379, 0))
        server = MemoryServer(bus=bus)
        self.addCleanup(server.stop)
        bus.attach(server.factory)
        server.factory.room.join(REMOTE, *MARY)
        bus._apply(entry(7, [[MARY[1]]], "not decoded"))
        self.assertEqual(server.factory.last_delivered, 7)
