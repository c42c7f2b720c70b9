"""Reading the cluster's stream, in memory: a batch with no recipient
connected to this node is passed over undecoded, a batch this node
published is delivered from memory, and nothing is delivered twice."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from muca.cluster.address import RedisAddress
from muca.cluster.entries import Batch, decode, encode
from muca.cluster.membership import REMOTE
from muca.cluster.redisbus import RedisBus
from muca.protocol.messages import ALL, PRIVATE, ChatMessage
from muca.server.bus import ClusterUnavailable
from muca.server.room import Room
from tests.support import MemoryServer

MARY = ("Mary", "mary@hku.hk")
TONY = ("Tony", "tony@hku.hk")


class Recorder:
    """A bus listener on its own room that keeps what it is given."""

    def __init__(self) -> None:
        self.room = Room()
        self.delivered: list[ChatMessage] = []
        self.passed_to = 0
        self.refused: list[tuple[list[str], Failure]] = []

    def deliver(self, messages: Sequence[ChatMessage]) -> None:
        self.delivered.extend(messages)

    def passed(self, upto: int) -> None:
        self.passed_to = upto

    def not_accepted(self, messages: Sequence[ChatMessage], failure: Failure) -> None:
        self.refused.append(([m.text for m in messages], failure))


def entry(
    first: int, rows: list[Any], to: Any, data: str | None = None, token: str = ""
) -> dict[str, str]:
    """A stream entry of a batch of messages, as the reader gets it: ``to``
    the uids they are for, or 0 for a batch with a broadcast; ``data``
    instead of the rows' JSON."""
    rows_json = json.dumps(rows) if data is None else data
    return encode(Batch(first, token, rows_json, len(rows), json.dumps(to)))


ROW = [1_700_000_000_000, MARY[1], PRIVATE, [TONY[1]], "hi"]
BROADCAST = [1_700_000_000_000, MARY[1], ALL, [], "hello"]


class PassingOverTests(SynchronousTestCase):
    """A node skips the messages that are all for members of other nodes."""

    def setUp(self) -> None:
        self.bus = RedisBus(RedisAddress("127.0.0.1", 6379, 0), Clock())
        self.listener = Recorder()
        self.bus.attach(self.listener)
        self.listener.room.join(REMOTE, *MARY)
        # A member connected here: any object stands for its connection.
        self.listener.room.join(object(), *TONY)

    def test_a_batch_for_other_nodes_only_is_not_decoded(self) -> None:
        # "d" is not even decoded (it would fail to), but the node's last
        # id moves on all the same.
        rows = [[*ROW[:3], [MARY[1]], "x"]] * 2
        self.bus._apply(decode(entry(7, rows, [MARY[1]], data="not decoded")))
        self.assertEqual(self.listener.delivered, [])
        self.assertEqual((self.bus.last_delivered, self.listener.passed_to), (8, 8))

    def test_only_the_messages_with_a_recipient_here_are_delivered(self) -> None:
        rows = [ROW, [*ROW[:3], [MARY[1]], "not for us"], BROADCAST]
        self.bus._apply(decode(entry(9, rows, 0)))
        self.assertEqual(
            [(m.id, m.text) for m in self.listener.delivered],
            [(9, "hi"), (11, "hello")],
        )
        self.assertEqual(self.listener.passed_to, 11)

    def test_messages_delivered_before_are_not_again(self) -> None:
        self.bus._apply(decode(entry(9, [ROW, ROW], [TONY[1]])))
        self.bus._apply(decode(entry(9, [ROW] * 3, [TONY[1]])))
        self.assertEqual([m.id for m in self.listener.delivered], [9, 10, 11])

    def test_a_batch_from_an_older_node_is_decoded_to_know(self) -> None:
        # Before "n" and "u", a batch had per-message routes in "r".
        old = {"t": "m", "f": "4", "k": "", "r": "[0, 0]"}
        old["d"] = json.dumps([[*ROW[:3], [MARY[1]], "not for us"], ROW])
        self.bus._apply(decode(old))
        self.assertEqual([(m.id, m.text) for m in self.listener.delivered], [(5, "hi")])
        self.assertEqual(self.listener.passed_to, 5)


class OwnBatchTests(SynchronousTestCase):
    """A node takes the batches it published from memory, in stream order."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.bus = RedisBus(RedisAddress("127.0.0.1", 6379, 0), self.clock)
        self.listener = Recorder()
        self.bus.attach(self.listener)
        self.listener.room.join(REMOTE, *MARY)
        self.listener.room.join(object(), *TONY)
        self.bus.ready = True
        self.calls: list[tuple[str, ...]] = []
        self.replies: list[Deferred[Any]] = []

        def run(script: str, *args: str) -> Deferred[Any]:
            self.calls.append(args)
            reply: Deferred[Any] = Deferred()
            self.replies.append(reply)
            return reply

        # Instead of Redis: each test answers the scripts (or not) itself.
        self.bus._run = run

    def published(self, *texts: str) -> dict[str, str]:
        """Publish one batch (Mary to Tony, then a broadcast per text after
        the first); return its stream entry, whose data is not decodable."""
        kinds = [(PRIVATE, (TONY[1],))] + [(ALL, ())] * (len(texts) - 1)
        for text, (kind, to) in zip(texts, kinds, strict=True):
            draft = ChatMessage(0, 1_700_000_000_000, MARY[1], kind, to, text)
            self.bus.publish([draft])
        self.clock.advance(0)
        floor, count, data, expected, token, to = self.calls[-1]
        self.assertEqual(json.loads(data)[0][4], texts[0])
        return {"t": "m", "f": "0", "n": count, "k": token, "u": to, "d": "?"}

    def test_read_back_before_the_reply_it_is_built_from_the_drafts(self) -> None:
        fields = self.published("one", "two")
        fields["f"] = "21"
        self.bus._apply(decode(fields))
        self.replies[-1].callback(21)
        self.assertEqual(
            [(m.id, m.text, m.kind) for m in self.listener.delivered],
            [(21, "one", PRIVATE), (22, "two", ALL)],
        )

    def test_read_back_after_the_reply_it_delivers_the_accepted_messages(
        self,
    ) -> None:
        fields = self.published("one")
        self.replies[-1].callback(5)
        fields["f"] = "5"
        self.bus._apply(decode(fields))
        self.assertEqual([m.id for m in self.listener.delivered], [5])

    def test_older_batches_not_read_back_are_decoded_if_they_come(self) -> None:
        # The first batch's script got no answer; the second's came back
        # first on the stream. The first, landing later, is decoded.
        first = self.published("one")
        self.replies[-1].errback(RuntimeError("no answer"))
        second = self.published("two")
        self.replies[-1].callback(1)
        second["f"] = "1"
        self.bus._apply(decode(second))
        first.update(f="2", d=json.dumps([ROW]))
        self.bus._apply(decode(first))
        self.assertEqual(
            [(m.id, m.text) for m in self.listener.delivered], [(1, "two"), (2, "hi")]
        )
        self.assertEqual(self.bus._publisher._own, {})

    def test_a_batch_published_before_redis_is_reached_is_refused_at_once(
        self,
    ) -> None:
        self.bus.ready = False
        draft = ChatMessage(0, 1_700_000_000_000, MARY[1], PRIVATE, (TONY[1],), "y")
        self.assertIsNone(self.bus.publish([draft]))
        [(texts, failure)] = self.listener.refused
        self.assertEqual(texts, ["y"])
        self.assertTrue(failure.check(ClusterUnavailable))
        self.assertEqual(self.calls, [])  # nothing sent to Redis


class ChatFactoryTests(SynchronousTestCase):
    """The node's own last id follows the messages passed over."""

    def test_passed_over_messages_count_as_gone_by(self) -> None:
        bus = RedisBus(RedisAddress("127.0.0.1", 6379, 0), Clock())
        server = MemoryServer(bus=bus)
        self.addCleanup(server.stop)
        bus.attach(server.factory)
        server.factory.room.join(REMOTE, *MARY)
        rows = [[*ROW[:3], [MARY[1]], "x"]]
        bus._apply(decode(entry(7, rows, [MARY[1]], data="not decoded")))
        self.assertEqual(server.factory.last_delivered, 7)
