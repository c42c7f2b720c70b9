"""A node's Redis connections: replies parsed in one pass, however they are
cut into reads; commands and scripts against a real redis-server; a command
with no reply fails in time and the connection comes back, also after a
reconnection made while Redis was stalled; the backoff and the log lines of
an outage, on a fake clock."""

from __future__ import annotations

import time
from typing import Any

import txredisapi
from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.cluster import scripts
from muca.cluster.address import RedisAddress
from muca.cluster.redisbus import RedisBus
from muca.cluster.redisclient import (
    RETRY_FIRST,
    RETRY_MAX,
    RedisFactory,
    RedisLink,
    RedisProtocol,
    ScriptCall,
    connect,
    connected,
    encode,
)
from tests.support.redis import free_port, start_redis

# One XREAD reply: one stream, one entry of three fields.
FIELDS = ["t", "m", "f", "42", "d", "[]"]
XREAD_REPLY = (
    b"*1\r\n*2\r\n$10\r\nmuca:event\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*6\r\n"
    + b"".join(b"$%d\r\n%s\r\n" % (len(f), f.encode()) for f in FIELDS)
)
XREAD_VALUE = [["muca:event", [["1-0", FIELDS]]]]


def protocol() -> RedisProtocol:
    """A protocol on a memory transport, as if connected and ready."""
    redis = RedisProtocol(replyTimeout=2.0, convertNumbers=False)
    # Its reply timeouts on a clock of its own, never advanced.
    redis.callLater = Clock().callLater
    transport = StringTransport()
    redis.makeConnection(transport)
    # Ready once Redis has answered its SELECT.
    redis.dataReceived(b"+OK\r\n")
    transport.clear()
    return redis


class ReplyParsingTests(SynchronousTestCase):
    """What a command's Deferred fires with, for each kind of reply."""

    def reply_to(self, *reads: bytes) -> Any:
        """The reply to one command, given in these reads."""
        redis = protocol()
        reply = redis.command(encode("ANY"))
        for data in reads:
            redis.dataReceived(data)
        return self.successResultOf(reply)

    def test_a_reply_of_many_bulk_strings_is_parsed_at_once(self) -> None:
        # No reactor turn is needed (txredisapi's own parser takes one per
        # bulk string).
        self.assertEqual(self.reply_to(XREAD_REPLY), XREAD_VALUE)

    def test_a_reply_cut_anywhere_gives_the_same(self) -> None:
        for cut in range(1, len(XREAD_REPLY)):
            self.assertEqual(
                self.reply_to(XREAD_REPLY[:cut], XREAD_REPLY[cut:]), XREAD_VALUE
            )
        self.assertEqual(
            self.reply_to(*(XREAD_REPLY[i : i + 1] for i in range(len(XREAD_REPLY)))),
            XREAD_VALUE,
        )

    def test_each_kind_of_value(self) -> None:
        reply = b"*7\r\n+OK\r\n:-12\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n$2\r\n\xff\xfe\r\n"
        # Status, integer, nil string, nil array, empty array, empty string,
        # and a string that is not UTF-8 (left as bytes).
        self.assertEqual(
            self.reply_to(reply), ["OK", -12, None, None, [], "", b"\xff\xfe"]
        )

    def test_an_array_of_strings_only_holds_each_kind_of_string(self) -> None:
        # Read at once as strings (empty, nil, not UTF-8, ten bytes long),
        # then a second reply right behind it; and cut anywhere.
        replies = (
            b"*5\r\n$0\r\n\r\n$-1\r\n$2\r\n\xff\xfe\r\n$10\r\n0123456789\r\n$0\r\n\r\n"
            b"*2\r\n$1\r\na\r\n$-1\r\n"
        )
        values = (["", None, b"\xff\xfe", "0123456789", ""], ["a", None])
        for cut in range(len(replies)):
            redis = protocol()
            first, second = redis.command(encode("A")), redis.command(encode("B"))
            redis.dataReceived(replies[:cut])
            redis.dataReceived(replies[cut:])
            self.assertFalse(redis.transport.disconnecting, cut)
            self.assertEqual(
                (self.successResultOf(first), self.successResultOf(second)),
                values,
                cut,
            )

    def test_a_number_stays_a_string(self) -> None:
        # User ids that look like numbers must stay strings.
        self.assertEqual(self.reply_to(b"$3\r\n007\r\n"), "007")

    def test_an_error_reply_fails_the_command(self) -> None:
        redis = protocol()
        reply = redis.command(encode("EVALSHA", "abc", "0"))
        redis.dataReceived(b"-NOSCRIPT No matching script.\r\n")
        failure = self.failureResultOf(reply, txredisapi.ResponseError)
        self.assertEqual(str(failure.value), "NOSCRIPT No matching script.")

    def test_an_error_not_in_utf8_and_the_reply_behind_it(self) -> None:
        redis = protocol()
        first, second = redis.command(encode("A")), redis.command(encode("B"))
        redis.dataReceived(b"-ERR bad \xff key\r\n:7\r\n")
        failure = self.failureResultOf(first, txredisapi.ResponseError)
        self.assertEqual(str(failure.value), "ERR bad \ufffd key")
        self.assertEqual(self.successResultOf(second), 7)

    def test_nothing_is_sent_after_a_reply_came_too_late(self) -> None:
        redis = protocol()
        clock = Clock()
        redis.callLater = clock.callLater
        late = redis.command(encode("PING"))
        clock.advance(2.0)
        self.failureResultOf(late, txredisapi.TimeoutError)
        redis.transport.clear()
        refused = self.failureResultOf(
            redis.command(encode("PING")), txredisapi.ConnectionError
        )
        self.assertEqual(str(refused.value), "Not connected")
        self.assertEqual(redis.transport.value(), b"")

    def test_replies_go_to_the_commands_in_order(self) -> None:
        redis = protocol()
        first, second = redis.command(encode("A")), redis.command(encode("B"))
        redis.dataReceived(b":1\r\n:2\r\n")
        self.assertEqual(
            (self.successResultOf(first), self.successResultOf(second)), (1, 2)
        )

    def test_commands_are_written_in_resp(self) -> None:
        redis = protocol()
        redis.command(encode("XREAD", "STREAMS", "k", "0-0"))
        self.assertEqual(
            redis.transport.value(),
            b"*4\r\n$5\r\nXREAD\r\n$7\r\nSTREAMS\r\n$1\r\nk\r\n$3\r\n0-0\r\n",
        )

    def test_not_redis_drops_the_connection(self) -> None:
        redis = protocol()
        reply = redis.command(encode("PING"))
        redis.dataReceived(b"HTTP/1.1 400 Bad Request\r\n")
        self.assertTrue(redis.transport.disconnecting)
        self.assertNoResult(reply)


async def until_connected(factory: Any, timeout: float = 10.0) -> RedisProtocol:
    """The factory's connection, once it is ready (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        redis = connected(factory)
        if redis is not None:
            return redis
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("no connection to Redis")


class RealRedisTests(TestCase):
    """Against a private redis-server."""

    def setUp(self) -> None:
        self.redis = start_redis(self)
        self.factory = connect(reactor, "127.0.0.1", self.redis.port, 0, 1.0)
        self.addCleanup(self.factory.disconnect)

    async def test_a_command_and_its_reply(self) -> None:
        redis = await until_connected(self.factory)
        self.assertEqual(await redis.command(encode("PING")), "PONG")
        await redis.command(encode("SET", "k", "é 1"))
        self.assertEqual(await redis.command(encode("GET", "k")), "é 1")

    async def test_the_database_it_was_given(self) -> None:
        other = connect(reactor, "127.0.0.1", self.redis.port, 3, 1.0)
        self.addCleanup(other.disconnect)
        in_3 = await until_connected(other)
        await in_3.command(encode("SET", "k", "in 3"))
        self.assertEqual(await in_3.command(encode("GET", "k")), "in 3")
        in_0 = await until_connected(self.factory)
        self.assertIsNone(await in_0.command(encode("GET", "k")))
        # As Redis sees each connection.
        self.assertIn(" db=3 ", await in_3.command(encode("CLIENT", "INFO")))
        self.assertIn(" db=0 ", await in_0.command(encode("CLIENT", "INFO")))

    async def test_an_outage_is_logged_with_the_connections_name(self) -> None:
        with capturedLogs() as events:
            link = connect(reactor, "127.0.0.1", free_port(), 0, 1.0)
            self.addCleanup(link.disconnect)
            deadline = time.monotonic() + 10
            while link.failures == 0 and time.monotonic() < deadline:
                await deferLater(reactor, 0.05, lambda: None)
        lines = [formatEvent(e) for e in events if "cluster" in formatEvent(e)]
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(
            lines[0],
            r"^cluster: Redis connection to Redis: Connection was refused by"
            r" other side: .*; reconnecting$",
        )

    async def test_a_script_by_its_sha_once_redis_has_it(self) -> None:
        redis = await until_connected(self.factory)
        call = ScriptCall("return {KEYS[1], ARGV[1], ARGV[2]}", ["key"], ["fixed"])
        with self.assertRaises(txredisapi.ResponseError) as refused:
            await redis.command(call.by_sha(("mine",)))
        self.assertTrue(str(refused.exception).startswith("NOSCRIPT"))
        self.assertEqual(
            await redis.command(call.whole(("mine",))), ["key", "fixed", "mine"]
        )
        self.assertEqual(
            await redis.command(call.by_sha(("again",))), ["key", "fixed", "again"]
        )

    async def test_the_bus_sends_a_script_redis_does_not_have(self) -> None:
        bus = RedisBus(RedisAddress("127.0.0.1", self.redis.port, 0), reactor)
        bus._commands = self.factory
        await until_connected(self.factory)
        # A fresh Redis has no scripts: EVALSHA fails, EVAL runs it.
        self.assertEqual(await bus._run(scripts.NEXT_ID, "41"), 42)
        self.assertEqual(await bus._run(scripts.NEXT_ID, "6"), 7)

    async def test_no_reply_in_time_fails_and_the_connection_comes_back(
        self,
    ) -> None:
        redis = await until_connected(self.factory)
        self.redis.pause()
        try:
            started = time.monotonic()
            first = redis.command(encode("PING"))
            second = redis.command(encode("PING"))
            for reply in (first, second):
                with self.assertRaises(txredisapi.TimeoutError) as late:
                    await reply
                self.assertEqual(
                    str(late.exception), "Not received Redis response in 1.0 seconds"
                )
            # replyTimeout is 1 s; the margin is for a loaded machine.
            self.assertLess(time.monotonic() - started, 5.0)
            # Nothing more goes on a connection given up on.
            self.assertIsNone(connected(self.factory))
            with self.assertRaises(txredisapi.ConnectionError):
                await redis.command(encode("PING"))
        finally:
            self.redis.resume()
        # A new connection, once Redis answers again.
        again = await until_connected(self.factory)
        self.assertIsNot(again, redis)
        self.assertEqual(await again.command(encode("PING")), "PONG")

    async def test_a_reconnection_made_while_redis_is_stalled_comes_back(
        self,
    ) -> None:
        # Stalled for longer than a command's timeout (1 s here) plus a retry,
        # so a reconnection is made while Redis answers nothing: its SELECT
        # times out (txredisapi then stopped reconnecting for good).
        redis = await until_connected(self.factory)
        self.redis.pause()
        try:
            with self.assertRaises(txredisapi.TimeoutError):
                await redis.command(encode("PING"))
            await deferLater(reactor, 3.0, lambda: None)
        finally:
            self.redis.resume()
        again = await until_connected(self.factory)
        self.assertEqual(await again.command(encode("PING")), "PONG")


class FakeEndpoint:
    """Connects at once or fails, as the test says, on memory transports."""

    def __init__(self) -> None:
        self.attempts: list[defer.Deferred[Any]] = []

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        d.factory = factory  # type: ignore[attr-defined]
        self.attempts.append(d)
        return d

    def refuse(self) -> None:
        self.attempts[-1].errback(ConnectionRefusedError())

    def accept(self, answer: bytes = b"+OK\r\n") -> RedisProtocol:
        attempt = self.attempts[-1]
        redis = attempt.factory.buildProtocol(None)  # type: ignore[attr-defined]
        redis.makeConnection(StringTransport())
        attempt.callback(redis)
        if answer:
            redis.dataReceived(answer)
        return redis


class RedisLinkTests(SynchronousTestCase):
    """Reconnecting with a backoff, and one log line per outage."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = FakeEndpoint()
        # Its connections' reply timeouts run on the test's clock too.
        factory = RedisFactory(self.clock, "x", 6379, 0, 2.0)
        self.link = RedisLink(self.clock, self.endpoint, factory, "commands")

    def lose(self, redis: RedisProtocol) -> None:
        redis.connectionLost(ConnectionRefusedError())

    def test_retries_back_off_and_an_outage_is_logged_once(self) -> None:
        self.clock.advance(100)
        with capturedLogs() as events:
            self.link.start()
            delays = []
            for _ in range(6):
                self.endpoint.refuse()
                attempts = len(self.endpoint.attempts)
                delay = self.clock.getDelayedCalls()[0].getTime() - self.clock.seconds()
                delays.append(round(delay, 3))
                self.clock.advance(delay)
                self.assertEqual(len(self.endpoint.attempts), attempts + 1)
            redis = self.endpoint.accept()
        self.assertIs(connected(self.link), redis)
        self.assertEqual(
            delays, [RETRY_FIRST, 0.4, 0.8, RETRY_MAX, RETRY_MAX, RETRY_MAX]
        )
        lines = [formatEvent(e) for e in events if "cluster" in formatEvent(e)]
        self.assertEqual(
            lines,
            [
                "cluster: commands connection to Redis: Connection was refused"
                " by other side.; reconnecting",
                f"cluster: commands connection to Redis again after 7 attempts"
                f" ({sum(delays):.1f} s)",
            ],
        )

    def test_a_select_that_fails_or_times_out_is_retried(self) -> None:
        self.link.start()
        # Connected, but Redis answers nothing (stalled): not ready, and the
        # SELECT's timeout drops it; then the next try finds Redis back.
        stalled = self.endpoint.accept(answer=b"")
        self.assertIsNone(connected(self.link))
        stalled.transport.abortConnection = lambda: self.lose(stalled)
        with capturedLogs() as events:
            self.clock.advance(2.0)
        self.assertEqual(
            [formatEvent(e) for e in events],
            ["cluster: commands connection to Redis: no answer; reconnecting"],
        )
        self.clock.advance(RETRY_FIRST)
        refused = self.endpoint.accept(answer=b"-ERR DB index is out of range\r\n")
        self.assertTrue(refused.given_up)
        self.lose(refused)
        self.clock.advance(RETRY_MAX)
        redis = self.endpoint.accept()
        self.assertIs(connected(self.link), redis)

    def test_a_lost_connection_is_made_again_at_once(self) -> None:
        self.link.start()
        first = self.endpoint.accept()
        with capturedLogs() as events:
            self.lose(first)
            self.assertIsNone(connected(self.link))
            self.clock.advance(0)
            again = self.endpoint.accept()
        self.assertIs(connected(self.link), again)
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "cluster: commands connection to Redis: connection lost; reconnecting",
                "cluster: commands connection to Redis again after 1 attempts (0.0 s)",
            ],
        )

    def test_disconnect_after_a_loss_stops_there(self) -> None:
        self.link.start()
        self.lose(self.endpoint.accept())
        self.successResultOf(self.link.disconnect())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_disconnect_while_redis_has_not_answered_the_select(self) -> None:
        self.link.start()
        stalled = self.endpoint.accept(answer=b"")
        closed = self.link.disconnect()
        self.assertTrue(stalled.transport.disconnecting)
        self.lose(stalled)
        self.successResultOf(closed)
        # Twice is no harm.
        self.successResultOf(self.link.disconnect())

    def test_disconnect_after_a_select_that_timed_out(self) -> None:
        self.link.start()
        stalled = self.endpoint.accept(answer=b"")
        self.lose(stalled)
        self.successResultOf(self.link.disconnect())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_disconnect_stops_retrying(self) -> None:
        self.link.start()
        self.endpoint.refuse()
        self.link.disconnect()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_disconnect_closes_the_connection_for_good(self) -> None:
        self.link.start()
        redis = self.endpoint.accept()
        closed = self.link.disconnect()
        self.assertTrue(redis.transport.disconnecting)
        self.assertNoResult(closed)
        self.lose(redis)
        self.successResultOf(closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.endpoint.attempts), 1)
