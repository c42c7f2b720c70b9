"""The heartbeat script on a real redis-server: a node silent for the TTL is
removed with its members; time when no node at all could beat (Redis was
stopped) counts against nobody, and is not a fresh start for a dead node."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.cluster import scripts
from muca.cluster.heartbeat import HEARTBEAT_TTL, STALL
from muca.cluster.redisbus import STREAM_MAXLEN
from muca.cluster.redisclient import ScriptCall, connect, encode
from tests.cluster.test_redisclient import until_connected
from tests.support.redis import start_redis

MEMBERS, NODES, EPOCH, BEAT = (scripts.KEYS[i] for i in (0, 5, 6, 7))
EVENTS = scripts.KEYS[2]


class HeartbeatTests(TestCase):
    """One node's beat, on a registry set up by hand."""

    async def start(self) -> None:
        """A private Redis that has the script."""
        redis = start_redis(self)
        factory = connect(reactor, "127.0.0.1", redis.port, 0, 2.0)
        self.addCleanup(factory.disconnect)
        self.redis = await until_connected(factory)
        self.heartbeat = ScriptCall(
            scripts.HEARTBEAT, scripts.KEYS, [str(STREAM_MAXLEN)]
        )
        await self.call("SCRIPT", "LOAD", scripts.HEARTBEAT)

    async def call(self, *args: str) -> Any:
        """One command's reply."""
        return await self.redis.command(encode(*args))

    async def now(self) -> int:
        """Redis's time, in ms, as the script reads it."""
        seconds, micros = await self.call("TIME")
        return int(seconds) * 1000 + int(micros) // 1000

    async def cluster(self, last_beat_ago: int, dead_silent_for: int) -> int:
        """Node "alive" beat ``last_beat_ago`` ms ago, the last of any node;
        node "dead" (Henry's) ``dead_silent_for`` ms ago. Returns now."""
        now = await self.now()
        await self.call("SET", EPOCH, "e1")
        await self.call("SET", BEAT, str(now - last_beat_ago))
        await self.call("ZADD", NODES, str(now - last_beat_ago), "alive")
        await self.call("ZADD", NODES, str(now - dead_silent_for), "dead")
        await self.call("HSET", MEMBERS, "henry", json.dumps(["Henry", "dead", 1]))
        return now

    async def beat(self) -> list[Any]:
        """One beat of node "alive": [epoch, known, nodes removed]."""
        ttl, stall = int(HEARTBEAT_TTL * 1000), int(STALL * 1000)
        args = ("alive", "e2", str(ttl), str(stall), "3000", "e1")
        return await self.redis.command(self.heartbeat.by_sha(args))

    async def test_a_node_silent_for_the_ttl_goes_with_its_members(self) -> None:
        await self.start()
        await self.cluster(last_beat_ago=500, dead_silent_for=5500)
        self.assertEqual(await self.beat(), ["e1", 1, 1])
        self.assertIsNone(await self.call("HGET", MEMBERS, "henry"))
        self.assertIsNone(await self.call("ZSCORE", NODES, "dead"))
        [[_, fields]] = await self.call("XRANGE", EVENTS, "-", "+")
        self.assertEqual(fields[:3], ["t", "l", "d"])
        self.assertEqual(json.loads(fields[3]), ["henry", "dead"])

    async def test_time_when_nobody_beat_counts_against_no_node(self) -> None:
        await self.start()
        # Redis was away for 3 s; node "dead" had been silent 1 s before.
        now = await self.cluster(last_beat_ago=3000, dead_silent_for=4000)
        self.assertEqual(await self.beat(), ["e1", 1, 0])
        # Still 1 s silent (not a fresh start): it goes 4 s later, not 5.
        silent = now - int(await self.call("ZSCORE", NODES, "dead"))
        self.assertTrue(900 <= silent <= 1100, silent)
        self.assertEqual(
            await self.call("HGET", MEMBERS, "henry"), json.dumps(["Henry", "dead", 1])
        )
