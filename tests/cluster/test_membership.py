"""Joins through the registry of a real redis-server, on a fake clock: a
join that completes leaves no timer behind, whether its event comes back
on the stream after the script's reply or before it; a join whose event
never comes is refused at its timeout."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from muca.cluster import scripts
from muca.cluster.entries import Joined, decode
from muca.cluster.membership import JOIN_WAIT, Membership
from muca.cluster.redisbus import STREAM_MAXLEN
from muca.cluster.redisclient import ScriptCall, connect, encode
from muca.cluster.stream import StreamReader
from muca.protocol.messages import CLUSTER_UNAVAILABLE, Join, JoinRefused
from muca.server.room import Member
from tests.cluster.test_redisclient import until_connected
from tests.support import MemoryServer
from tests.support.redis import start_redis

NODE = "node1"
EVENTS = scripts.KEYS[2]


class JoinTimerTests(TestCase):
    """The timer of each join, on the membership's own clock."""

    async def start(self) -> None:
        """A private Redis with this node registered, and a node's chat
        factory (in memory) whose room the membership keeps."""
        redis = start_redis(self)
        factory = connect(reactor, "127.0.0.1", redis.port, 0, 2.0)
        self.addCleanup(factory.disconnect)
        self.redis = await until_connected(factory)
        self.clock = Clock()
        self.server = MemoryServer()
        self.addCleanup(self.server.stop)
        self.membership = Membership(
            self.clock,
            NODE,
            None,
            self.run_script,
            StreamReader(self.clock, lambda fields: None, lambda: None),
            lambda failure: None,
        )
        self.membership.listener = self.server.factory
        self.position = "0-0"
        #: Whether the join events come back before the scripts' replies.
        self.events_first = False
        await self.run_script(scripts.HEARTBEAT, NODE, "e1", "5000", "2000", "3000", "")

    def run_script(self, script: str, *args: str) -> Deferred[Any]:
        """Run one of the cluster's scripts, as the bus does."""
        return Deferred.fromCoroutine(self.script(script, *args))

    async def script(self, script: str, *args: str) -> Any:
        call = ScriptCall(script, scripts.KEYS, [str(STREAM_MAXLEN)])
        reply = await self.redis.command(call.whole(args))
        if self.events_first and script == scripts.JOIN:
            await self.events_come_back()
        return reply

    async def replies_are_in(self) -> None:
        """The replies to the scripts run so far have been handled (Redis
        answers one connection's commands in order)."""
        await self.redis.command(encode("PING"))

    async def events_come_back(self) -> None:
        """The stream's new join events reach the membership, as the bus's
        reader hands them on."""
        entries = await self.redis.command(
            encode("XRANGE", EVENTS, "(" + self.position, "+")
        )
        for entry_id, fields in entries:
            self.position = entry_id
            entry = decode(dict(zip(fields[::2], fields[1::2], strict=True)))
            if isinstance(entry, Joined):
                self.membership.apply_join(entry)

    def join(self, number: int) -> Deferred[Member]:
        """A join of user number ``number`` on a new connection."""
        connection = self.server.connect().protocol
        request = Join(f"User{number}", f"user{number}@hku.hk")
        return Deferred.fromCoroutine(self.joined(connection, request))

    async def joined(self, connection: Any, request: Join) -> Member:
        return await self.membership.join(connection, request, True)

    async def test_joins_completed_after_the_reply_leave_no_timer(self) -> None:
        await self.start()
        joins = [self.join(number) for number in range(5)]
        # The scripts' replies are in; the events are on the stream, unread:
        # each join waits for its event, for as long as its timer.
        await self.replies_are_in()
        self.assertEqual(len(self.clock.getDelayedCalls()), len(joins))
        await self.events_come_back()
        members = [await d for d in joins]
        self.assertEqual(
            [m.uid for m in members], [f"user{n}@hku.hk" for n in range(5)]
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    async def test_joins_whose_event_came_first_leave_no_timer(self) -> None:
        await self.start()
        self.events_first = True
        members = [await self.join(number) for number in range(5)]
        self.assertEqual(len(self.server.factory.room.members()), len(members))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    async def test_a_join_whose_event_never_comes_is_refused_in_time(self) -> None:
        await self.start()
        joined = self.join(1)
        await self.replies_are_in()
        # Its event is on the stream, but never reaches the membership.
        self.clock.advance(JOIN_WAIT)
        with self.assertRaises(JoinRefused) as refused:
            await joined
        self.assertEqual(refused.exception.code, CLUSTER_UNAVAILABLE)
        self.assertEqual(self.clock.getDelayedCalls(), [])
