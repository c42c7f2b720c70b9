"""muca.server.limits, and the limits as the server applies them (in memory)."""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from muca.server.connection import REFUSED_WAIT
from muca.server.limits import (
    DEFAULT_BURST,
    DEFAULT_RATE,
    ConnectionCounter,
    TokenBucket,
)
from tests.support import OKAY, MemoryPeer, MemoryServer, join, roster, send

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")
PETER = ("Peter", "peter@hku.hk")


class TokenBucketTests(SynchronousTestCase):
    def test_full_bucket_allows_a_burst_then_refuses(self) -> None:
        bucket = TokenBucket(rate=20, burst=50, clock=Clock())
        self.assertEqual([bucket.take() for _ in range(51)], [True] * 50 + [False])

    def test_tokens_come_back_at_the_rate(self) -> None:
        clock = Clock()
        bucket = TokenBucket(rate=20, burst=50, clock=clock)
        for _ in range(50):
            bucket.take()
        clock.advance(0.1)  # two tokens
        self.assertEqual([bucket.take() for _ in range(3)], [True, True, False])

    def test_tokens_never_exceed_the_burst(self) -> None:
        clock = Clock()
        bucket = TokenBucket(rate=20, burst=5, clock=clock)
        clock.advance(3600)
        self.assertEqual(sum(bucket.take() for _ in range(10)), 5)

    def test_refused_takes_do_not_spend(self) -> None:
        clock = Clock()
        bucket = TokenBucket(rate=1, burst=1, clock=clock)
        self.assertTrue(bucket.take())
        for _ in range(100):
            self.assertFalse(bucket.take())
        clock.advance(1)
        self.assertTrue(bucket.take())

    def test_wait_says_when_the_next_token_comes(self) -> None:
        clock = Clock()
        bucket = TokenBucket(rate=20, burst=2, clock=clock)
        self.assertEqual(bucket.wait(), 0)
        bucket.take()
        bucket.take()
        self.assertAlmostEqual(bucket.wait(), 0.05)
        clock.advance(0.05)
        self.assertTrue(bucket.take())

    def test_nonsense_settings_are_refused(self) -> None:
        for rate, burst in ((0, 1), (1, 0), (-1, 5)):
            with self.assertRaises(ValueError):
                TokenBucket(rate, burst, Clock())


class ConnectionCounterTests(SynchronousTestCase):
    def test_per_address_cap(self) -> None:
        counter = ConnectionCounter(max_total=None, max_per_address=2)
        self.assertIsNone(counter.admit("10.0.0.1"))
        self.assertIsNone(counter.admit("10.0.0.1"))
        self.assertIn("10.0.0.1", counter.admit("10.0.0.1") or "")
        self.assertIsNone(counter.admit("10.0.0.2"))
        counter.release("10.0.0.1")
        self.assertIsNone(counter.admit("10.0.0.1"))

    def test_total_cap(self) -> None:
        counter = ConnectionCounter(max_total=2, max_per_address=None)
        self.assertIsNone(counter.admit("a"))
        self.assertIsNone(counter.admit(None))
        self.assertIsNotNone(counter.admit("b"))
        self.assertEqual(counter.total, 2)

    def test_refused_connections_are_not_counted(self) -> None:
        counter = ConnectionCounter(max_total=1, max_per_address=1)
        counter.admit("a")
        for _ in range(10):
            counter.admit("a")
            counter.admit("b")
        self.assertEqual(
            (counter.total, counter.count("a"), counter.count("b")), (1, 1, 0)
        )

    def test_release_forgets_an_address_with_no_connections(self) -> None:
        counter = ConnectionCounter(max_per_address=3)
        for _ in range(3):
            counter.admit("a")
        for _ in range(3):
            counter.release("a")
        self.assertEqual((counter.total, counter.count("a")), (0, 0))
        self.assertEqual(counter._by_address, {})

    def test_no_caps_admit_everything(self) -> None:
        counter = ConnectionCounter()
        for _ in range(1000):
            self.assertIsNone(counter.admit("a"))


def codes(objects: list[dict]) -> list[str]:
    """The CODE of each object."""
    return [obj.get("CODE") for obj in objects]


def join_peer(server: MemoryServer, who: tuple[str, str]) -> MemoryPeer:
    """A connection that joined as ``who``; what it got so far is drained."""
    peer = server.connect()
    peer.send_json(join(*who))
    assert peer.take()[0] == OKAY
    return peer


class SlowConsumerTests(SynchronousTestCase):
    """The transport pauses the connection (its producer) when its buffer is
    full; bytes written while paused are counted against ``max_outbound``."""

    def setUp(self) -> None:
        self.server = MemoryServer(max_outbound=1000, rate=None)
        self.addCleanup(self.server.stop)
        self.tony, self.mary, self.henry = (
            join_peer(self.server, who) for who in (TONY, MARY, HENRY)
        )
        for peer in (self.tony, self.mary, self.henry):
            peer.take()

    def broadcast(self, count: int, size: int = 100) -> None:
        for i in range(count):
            self.mary.send_json(send(f"{i:04d}" + "x" * size, [], MARY[1]))
            self.server.clock.advance(0)  # fan-out is written at the turn's end

    def test_connection_is_registered_as_a_streaming_producer(self) -> None:
        self.assertIs(self.tony.transport.producer, self.tony.protocol)
        self.assertTrue(self.tony.transport.streaming)

    def test_paused_connection_is_dropped_past_the_limit(self) -> None:
        self.tony.protocol.pauseProducing()
        with capturedLogs() as events:
            self.broadcast(5)  # 180 bytes each: under 1000
            self.assertFalse(self.tony.closed_by_server)
            self.broadcast(1)
        self.assertTrue(self.tony.closed_by_server)
        # The producer is unregistered, or the transport would never close.
        self.assertIsNone(self.tony.transport.producer)
        objects = self.tony.take()
        self.assertEqual(len(objects), 6)  # 5 messages, then the error
        self.assertEqual(objects[-1]["CODE"], "SLOW_CONSUMER")
        self.assertTrue(
            any("slow consumer" in str(e.get("log_format")) for e in events)
        )

    def test_others_get_the_new_list_and_the_room_forgets_the_slow_one(self) -> None:
        self.tony.protocol.pauseProducing()
        self.broadcast(10)
        self.assertNotIn(TONY[1], self.server.factory.room)
        lists = [o for o in self.henry.take() if o["CMD"] == "LIST"]
        self.assertEqual(lists, [roster(MARY, HENRY)])
        self.assertEqual(self.mary.take(), [roster(MARY, HENRY)])

    def test_nothing_more_is_written_after_the_limit(self) -> None:
        self.tony.protocol.pauseProducing()
        self.broadcast(10)
        self.tony.take()
        self.broadcast(10)
        self.assertEqual(self.tony.take(), [])

    def test_the_buffer_is_dropped_after_the_grace_period(self) -> None:
        self.tony.protocol.pauseProducing()
        self.broadcast(10)
        self.assertFalse(self.tony.transport.disconnected)
        self.server.clock.advance(self.server.factory.config.close_grace)
        self.assertTrue(self.tony.transport.disconnected)  # abortConnection
        self.tony.lose()
        self.assertEqual(self.server.clock.getDelayedCalls(), [])

    def test_resume_forgets_what_was_counted(self) -> None:
        for _ in range(5):
            self.tony.protocol.pauseProducing()
            self.broadcast(5)
            self.tony.protocol.resumeProducing()
        self.assertFalse(self.tony.closed_by_server)
        self.assertEqual(len(self.tony.take()), 25)

    def test_a_reading_connection_is_never_dropped(self) -> None:
        self.broadcast(100)
        self.assertFalse(self.tony.closed_by_server)
        self.assertEqual(len(self.tony.take()), 100)


class ClosingTests(SynchronousTestCase):
    def test_a_member_being_closed_leaves_the_room_at_once(self) -> None:
        server = MemoryServer(max_frame=100)
        self.addCleanup(server.stop)
        tony = join_peer(server, TONY)
        mary = server.connect()
        mary.send_json(join(*MARY), newline=False)  # original framing
        tony.take()
        mary.take()
        mary.protocol.pauseProducing()  # Mary does not read
        mary.send(b"{" + b" " * 200)  # too long in original framing: ERROR and close
        self.assertTrue(mary.closed_by_server)
        self.assertNotIn(MARY[1], server.factory.room)
        self.assertEqual(tony.take(), [roster(TONY)])
        # Nothing more is written for her while the connection goes.
        mary.take()
        tony.send_json(send("x" * 50, [], TONY[1]))
        self.assertEqual(mary.take(), [])


class JoinTimeoutTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = MemoryServer(join_timeout=30)
        self.addCleanup(self.server.stop)

    def test_connection_that_never_joins_is_closed_after_the_timeout(self) -> None:
        peer = self.server.connect()
        self.server.clock.advance(29.9)
        self.assertFalse(peer.closed_by_server)
        self.server.clock.advance(0.1)
        self.assertTrue(peer.closed_by_server)

    def test_talking_without_joining_does_not_extend_it(self) -> None:
        peer = self.server.connect()
        for _ in range(6):
            self.server.clock.advance(5)
            peer.send(b"garbage\n")
        self.assertTrue(peer.closed_by_server)

    def test_refused_join_does_not_stop_the_clock(self) -> None:
        tony = join_peer(self.server, TONY)
        peer = self.server.connect()
        peer.send_json(join("Tony", "other@hku.hk"))
        self.server.clock.advance(30)
        self.assertTrue(peer.closed_by_server)
        self.assertFalse(tony.closed_by_server)

    def test_joined_connection_is_never_timed_out(self) -> None:
        tony = join_peer(self.server, TONY)
        self.server.clock.advance(3600)
        self.assertFalse(tony.closed_by_server)

    def test_timed_out_connection_is_cut_if_it_does_not_go(self) -> None:
        peer = self.server.connect()
        self.server.clock.advance(30)
        self.server.clock.advance(self.server.factory.config.close_grace)
        self.assertTrue(peer.transport.disconnected)
        peer.lose()
        self.assertEqual(self.server.clock.getDelayedCalls(), [])

    def test_no_timeout_when_turned_off(self) -> None:
        server = MemoryServer(join_timeout=None)
        self.addCleanup(server.stop)
        peer = server.connect()
        self.assertEqual(server.clock.getDelayedCalls(), [])
        server.clock.advance(3600)
        self.assertFalse(peer.closed_by_server)


class RateLimitTests(SynchronousTestCase):
    """Past its rate a peer is slowed, never dropped (default settings)."""

    def setUp(self) -> None:
        self.server = MemoryServer(rate=DEFAULT_RATE, burst=DEFAULT_BURST)
        self.addCleanup(self.server.stop)
        self.tony = join_peer(self.server, TONY)
        self.mary = join_peer(self.server, MARY)
        self.henry = join_peer(self.server, HENRY)
        self.server.clock.advance(10)  # buckets full again
        for peer in (self.tony, self.mary, self.henry):
            peer.take()

    def flood(self, count: int, start: int = 0) -> None:
        data = b"".join(
            b'{"CMD":"SEND","MSG":"m%d","TO":[],"FROM":"mary@hku.hk"}\n' % i
            for i in range(start, start + count)
        )
        self.mary.send(data)

    def texts(self, peer: MemoryPeer) -> list[str]:
        return [m["MSG"] for m in peer.take() if m["CMD"] == "MSG"]

    def test_a_flood_is_delivered_whole_at_the_rate_after_the_burst(self) -> None:
        self.flood(300)
        clock = self.server.clock
        delivered = self.texts(self.tony)
        self.assertEqual(len(delivered), 50)
        for second in range(1, 14):
            clock.advance(1)
            delivered += self.texts(self.tony)
            self.assertEqual(len(delivered), min(300, 50 + 20 * second), second)
        self.assertEqual(delivered, [f"m{i}" for i in range(300)])
        self.assertEqual(self.mary.take(), [])  # no error: nothing was dropped
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_reading_is_paused_while_frames_wait_and_resumed_after(self) -> None:
        self.flood(51)
        self.assertEqual(self.mary.transport.producerState, "paused")
        self.server.clock.advance(0.05)
        self.assertEqual(len(self.texts(self.tony)), 51)
        self.assertEqual(self.mary.transport.producerState, "producing")

    def test_what_arrives_while_paused_waits_behind_the_rest(self) -> None:
        self.flood(60)
        self.flood(5, start=60)  # bytes already on their way when paused
        self.server.clock.advance(1)
        self.assertEqual(self.texts(self.tony), [f"m{i}" for i in range(65)])

    def test_sender_may_go_on_at_the_rate(self) -> None:
        self.flood(50)
        self.tony.take()
        for _ in range(40):
            self.server.clock.advance(0.05)
            self.flood(1)
        self.assertEqual(len(self.tony.take()), 40)
        self.assertEqual(self.mary.take(), [])
        self.assertEqual(self.mary.transport.producerState, "producing")

    def test_others_chat_on_while_a_flooder_is_slowed(self) -> None:
        self.flood(500)
        self.assertFalse(self.mary.closed_by_server)
        self.assertIn(MARY[1], self.server.factory.room)
        self.tony.send_json(send("hi", [HENRY[1]], TONY[1]))
        self.henry.send_json(send("hello", [TONY[1]], HENRY[1]))
        self.assertEqual(self.texts(self.henry)[-1], "hi")
        self.assertEqual(self.texts(self.tony)[-1], "hello")

    def test_garbage_counts_too_and_is_answered_late(self) -> None:
        self.mary.send(b"x\n" * 60)
        self.assertEqual(codes(self.mary.take()), ["BAD_JSON"] * 50)
        self.server.clock.advance(0.5)
        self.assertEqual(codes(self.mary.take()), ["BAD_JSON"] * 10)

    def test_every_join_gets_its_ack_in_order_and_takes_a_token(self) -> None:
        self.flood(60)
        self.mary.send_json(join(*MARY))
        self.assertEqual(len(self.texts(self.tony)), 50)
        self.assertEqual(self.mary.take(), [])  # the JOIN waits its turn
        self.server.clock.advance(0.5)  # 10 tokens: the 10 SENDs before it
        self.assertEqual(len(self.texts(self.tony)), 10)
        self.assertEqual(self.mary.take(), [])
        self.server.clock.advance(0.05)
        (ack,) = self.mary.take()
        self.assertEqual((ack["CMD"], ack["CODE"]), ("ACK", "ALREADY_JOINED"))

    def test_repeated_joins_are_slowed_like_any_flood(self) -> None:
        self.mary.send(json.dumps(join(*MARY)).encode() * 100)
        self.assertEqual(codes(self.mary.take()), ["ALREADY_JOINED"] * 50)
        self.assertEqual(self.mary.transport.producerState, "paused")
        self.server.clock.advance(1)
        self.assertEqual(codes(self.mary.take()), ["ALREADY_JOINED"] * 20)

    def test_a_slowed_peer_that_leaves_leaves_nothing_behind(self) -> None:
        self.flood(100)
        self.mary.lose()
        self.server.clock.advance(10)
        self.assertEqual(len(self.texts(self.tony)), 50)
        self.assertEqual(self.server.clock.getDelayedCalls(), [])

    def test_no_limit_when_turned_off(self) -> None:
        server = MemoryServer(rate=None)
        self.addCleanup(server.stop)
        tony, mary = join_peer(server, TONY), join_peer(server, MARY)
        tony.take()
        mary.send(
            b"".join(
                b'{"CMD":"SEND","MSG":"m","TO":[],"FROM":"mary@hku.hk"}\n'
                for _ in range(1000)
            )
        )
        self.assertEqual(len(tony.take()), 1000)


class ConnectionCapTests(SynchronousTestCase):
    def test_connection_past_the_per_address_cap_gets_server_full_and_close(
        self,
    ) -> None:
        server = MemoryServer(max_per_address=2)
        self.addCleanup(server.stop)
        first, second = server.connect(), server.connect()
        third = server.connect()
        self.assertEqual(third.take(), [])
        third.send_json(join(*TONY))
        (ack,) = third.take()
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "SERVER_FULL"))
        self.assertTrue(third.closed_by_server)
        self.assertFalse(first.closed_by_server or second.closed_by_server)
        self.assertNotIn(TONY[1], server.factory.room)
        # Input after the refusal is ignored.
        third.send_json(join(*MARY))
        self.assertEqual(third.take(), [])

    def test_refused_connection_that_sends_anything_else_gets_error(self) -> None:
        server = MemoryServer(max_per_address=1)
        self.addCleanup(server.stop)
        server.connect()
        refused = server.connect()
        refused.send(b"hello\n")
        (error,) = refused.take()
        self.assertEqual((error["CMD"], error["CODE"]), ("ERROR", "SERVER_FULL"))
        self.assertTrue(refused.closed_by_server)

    def test_refused_connection_that_says_nothing_is_closed_soon(self) -> None:
        server = MemoryServer(max_per_address=1)
        self.addCleanup(server.stop)
        server.connect()
        refused = server.connect()
        server.clock.advance(REFUSED_WAIT + 0.1)
        (error,) = refused.take()
        self.assertEqual(error["CODE"], "SERVER_FULL")
        self.assertTrue(refused.closed_by_server)

    def test_loopback_is_exempt_from_the_per_address_cap_only_when_asked(
        self,
    ) -> None:
        exempt = ConnectionCounter(max_per_address=1, exempt_loopback=True)
        self.assertIsNone(exempt.admit("127.0.0.1"))
        self.assertIsNone(exempt.admit("127.0.0.1"))
        self.assertIsNone(exempt.admit("::1"))
        self.assertIsNone(exempt.admit("10.0.0.1"))
        self.assertIsNotNone(exempt.admit("10.0.0.1"))
        strict = ConnectionCounter(max_per_address=1)
        self.assertIsNone(strict.admit("127.0.0.1"))
        self.assertIsNotNone(strict.admit("127.0.0.1"))

    def test_a_closed_connection_frees_its_place(self) -> None:
        server = MemoryServer(max_per_address=1)
        self.addCleanup(server.stop)
        first = server.connect()
        refused = server.connect()
        first.lose()
        refused.lose()
        self.assertEqual(server.factory.counter.total, 0)
        peer = server.connect()
        peer.send_json(join(*TONY))
        self.assertEqual(peer.take()[0], OKAY)

    def test_total_cap(self) -> None:
        server = MemoryServer(max_connections=3, max_per_address=None)
        self.addCleanup(server.stop)
        peers = [server.connect() for _ in range(4)]
        for peer, who in zip(peers, (TONY, MARY, HENRY, PETER), strict=True):
            peer.send_json(join(*who))
        acks = [peer.take()[0]["TYPE"] for peer in peers]
        self.assertEqual(acks, ["OKAY"] * 3 + ["FAIL"])
        self.assertEqual([p.closed_by_server for p in peers], [False] * 3 + [True])

    def test_full_room_fails_join_with_server_full(self) -> None:
        server = MemoryServer(capacity=1)
        self.addCleanup(server.stop)
        join_peer(server, TONY)
        mary = server.connect()
        mary.send_json(join(*MARY))
        (ack,) = mary.take()
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "SERVER_FULL"))
        self.assertFalse(mary.closed_by_server)
