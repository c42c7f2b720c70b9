"""Redis stalled (SIGSTOP) for 10 s and 30 s under load: the nodes come back
by themselves, and every message sent was delivered or refused. A node
started before its Redis, and one whose history database stops: joins wait
for them, and ``/healthz`` tells."""

from __future__ import annotations

import time

from twisted.trial.unittest import TestCase

from tests.cluster.support import WAIT, join_on, logged, roster_becomes, start_node
from tests.cluster.test_faults import HENRY, MARY, PETER, TONY, messages, pause
from tests.support import OKAY, RawClient, connect, join, send
from tests.support import postgres as pgsupport
from tests.support.redis import RedisServer, free_port, start_redis
from tests.support.twistd import Twistd, start_twistd
from tests.web.test_gateway import get

#: Seconds between two rounds of sends (one message from each client).
ROUND = 0.2


def refusals(client: RawClient) -> int:
    """How many of its SENDs the server refused (an ERROR for a SEND)."""
    return sum(
        1 for o in client.objects if o.get("CMD") == "ERROR" and o.get("REF") == "SEND"
    )


async def join_when_back(testcase: TestCase, node: Twistd, nickname: str, uid: str):
    """Join ``node`` as soon as it takes joins again (bounded retries)."""
    deadline = time.monotonic() + 2 * WAIT
    ack = None
    while time.monotonic() < deadline:
        client = await connect(testcase, node.port)
        client.send_json(join(nickname, uid))
        ack = await client.next_object(WAIT)
        if ack == OKAY:
            return client
        client.close()
        await pause(0.5)
    raise AssertionError(f"no OKAY within {2 * WAIT} s; last ACK {ack}")


class RedisStallTests(TestCase):
    """SIGSTOP of Redis while two clients on each of two nodes send."""

    async def test_a_10_s_stall(self) -> None:
        await self.stall(10.0)

    async def test_a_30_s_stall(self) -> None:
        await self.stall(30.0)

    async def stall(self, seconds: float) -> None:
        redis = start_redis(self)
        one = await start_node(self, redis)
        two = await start_node(self, redis)
        people = [TONY, PETER, MARY, HENRY]
        clients = [
            await join_on(self, node, *person)
            for node, person in zip((one, one, two, two), people, strict=True)
        ]
        for client in clients:
            await roster_becomes(client, people)
        sent: dict[str, list[str]] = {uid: [] for _, uid in people}

        async def send_for(duration: float) -> None:
            end = time.monotonic() + duration
            for _ in range(int(duration / ROUND) + 1):
                for client, (_, uid) in zip(clients, people, strict=True):
                    text = f"{uid} {len(sent[uid])}"
                    client.send_json(send(text, [], uid))
                    sent[uid].append(text)
                if time.monotonic() > end:
                    return
                await pause(ROUND)

        await send_for(1.0)
        redis.pause()
        try:
            await send_for(seconds)
        finally:
            redis.resume()
        await send_for(1.0)

        # Every message is delivered to all three others, or refused with an
        # ERROR to its sender; never both, never neither.
        def settled() -> bool:
            return all(
                len(delivered(uid)) + refusals(client) >= len(sent[uid])
                for client, (_, uid) in zip(clients, people, strict=True)
            )

        def delivered(uid: str) -> set[str]:
            return {m["MSG"] for c in clients for m in messages(c) if m["FROM"] == uid}

        deadline = time.monotonic() + 2 * WAIT
        while not settled() and time.monotonic() < deadline:
            await pause(0.2)
        for client, (_, uid) in zip(clients, people, strict=True):
            texts = delivered(uid)
            self.assertEqual(len(texts) + refusals(client), len(sent[uid]), uid)
            for other in clients:
                if other is not client:
                    got = [m["MSG"] for m in messages(other) if m["FROM"] == uid]
                    self.assertEqual(sorted(got), sorted(texts), "not to everyone")
        # The cluster works again: a newcomer joins either node, and its
        # message reaches everyone.
        newcomers = [
            await join_when_back(self, one, "Ann", "ann@hku.hk"),
            await join_when_back(self, two, "Bob", "bob@hku.hk"),
        ]
        newcomers[0].send_json(send("back", [], "ann@hku.hk"))
        for client in [*clients, newcomers[1]]:
            for _ in range(5000):
                obj = await client.next_object(WAIT)
                if obj.get("CMD") == "MSG" and obj["MSG"] == "back":
                    break
        # The outage is logged once per connection, not per try or message.
        for node in (one, two):
            output = node.process.output
            self.assertNotIn("Scheduling retry", output)
            self.assertLessEqual(output.count("to Redis: "), 2, output[-3000:])
            self.assertLessEqual(output.count("refusing messages"), 2)
            self.assertNotIn("message not accepted", output)
        await logged(one, r"Redis again after \d+ attempts", 0)
        await logged(one, r"\d+ messages refused during the outage", 0)


async def health_becomes(port: int, code: int, body: bytes) -> None:
    """Ask ``/healthz`` until it answers ``code`` and ``body`` (bounded)."""
    deadline = time.monotonic() + WAIT
    seen = None
    while time.monotonic() < deadline:
        response, text = await get(port, "/healthz")
        seen = (response.code, text)
        if seen == (code, body):
            return
        await pause(0.2)
    raise AssertionError(f"/healthz still says {seen}")


class ReadinessTests(TestCase):
    """A node started while its Redis is not running yet; the history
    database stopped under a running node."""

    async def test_joins_wait_for_redis_and_healthz_tells(self) -> None:
        redis = RedisServer(free_port())
        self.addCleanup(redis.kill)
        node = await start_twistd(
            self,
            "--cluster",
            redis.url,
            "--web",
            "tcp:0:interface=127.0.0.1",
        )
        web = int((await node.process.wait_for(r"Site starting on (\d+)")).group(1))
        response, body = await get(web, "/healthz")
        self.assertEqual((response.code, body), (503, b"cluster: Redis unreachable\n"))
        # With no Redis at all, a JOIN is held, then refused.
        early = await connect(self, node.port)
        early.send_json(join(*TONY))
        ack = await early.next_object(WAIT)
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "CLUSTER_UNAVAILABLE"))
        # A JOIN made before Redis appears is answered OKAY once it does. The
        # node has read it by the time it answers a later /healthz.
        mary = await connect(self, node.port)
        mary.send_json(join(*MARY))
        response, body = await get(web, "/healthz")
        self.assertEqual(response.code, 503)
        redis.start()
        self.assertEqual(await mary.next_object(WAIT), OKAY)
        response, body = await get(web, "/healthz")
        self.assertEqual((response.code, body), (200, b"ok\n"))
        # Waiting for Redis was logged once per connection, not per try.
        output = node.process.output
        self.assertNotIn("Scheduling retry", output)
        self.assertLessEqual(output.count("to Redis: "), 2, output[-3000:])
        await logged(node, r"connection to Redis again after \d+ attempts", 0)

    async def test_joins_wait_for_the_database_and_healthz_tells(self) -> None:
        redis = start_redis(self)
        server = pgsupport.private_server(self)
        node = await start_node(
            self, redis, "--db", server.conninfo(), "--web", "tcp:0:interface=127.0.0.1"
        )
        web = int((await node.process.wait_for(r"Site starting on (\d+)")).group(1))
        await health_becomes(web, 200, b"ok\n")
        pgsupport.stop(server)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            response, body = await get(web, "/healthz")
            if response.code == 503:
                break
            await pause(0.2)
        self.assertEqual(response.code, 503)
        self.assertTrue(body.startswith(b"store: PostgreSQL: "), body)
        # Held, then refused with a code that says why.
        early = await connect(self, node.port)
        early.send_json(join(*TONY))
        ack = await early.next_object(WAIT)
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "STORE_UNAVAILABLE"))
        # Held, and taken once the database is back.
        mary = await connect(self, node.port)
        mary.send_json(join(*MARY))
        response, _ = await get(web, "/healthz")
        self.assertEqual(response.code, 503)
        pgsupport.start(server)
        self.assertEqual(await mary.next_object(WAIT), OKAY)
        await health_becomes(web, 200, b"ok\n")
