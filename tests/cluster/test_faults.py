"""Faults: a node killed with SIGKILL, Redis killed and restarted empty,
Redis paused (SIGSTOP) for a few seconds. Nothing accepted is lost or
doubled; the rosters come right again."""

from __future__ import annotations

import os
import signal
import time

import psycopg
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.cluster.support import (
    WAIT,
    join_on,
    logged,
    next_of,
    roster_becomes,
    sends_until_delivered,
    start_node,
)
from tests.support import RawClient, connect, join, send
from tests.support import postgres as pgsupport
from tests.support.redis import RedisServer, start_redis
from tests.support.twistd import Twistd

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")
PETER = ("Peter", "peter@hku.hk")


async def pause(seconds: float) -> None:
    """Let the reactor run for ``seconds``."""
    await deferLater(reactor, seconds, lambda: None)


def messages(client: RawClient) -> list[dict]:
    """Every MSG the client has received so far (handed out or not)."""
    return [o for o in client.objects if o.get("CMD") == "MSG"]


def errors(client: RawClient, code: str) -> int:
    """How many ERRORs with this code the client has received."""
    return sum(
        1 for o in client.objects if o.get("CMD") == "ERROR" and o["CODE"] == code
    )


async def received_all(
    client: RawClient, texts: set[str], timeout: float = 2 * WAIT
) -> None:
    """Wait until the client has every one of ``texts``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if texts <= {m["MSG"] for m in messages(client)}:
            return
        await pause(0.05)
    missing = texts - {m["MSG"] for m in messages(client)}
    raise AssertionError(
        f"{len(missing)} messages never arrived, e.g. {sorted(missing)[:3]}"
    )


#: The nodes' heartbeat timeout in the tests of a node's death: short, so
#: that they wait little for it, not so short that a node held back on a
#: loaded machine would be taken for dead.
HEARTBEAT_TIMEOUT = ("--heartbeat-timeout", "3")


class NodeDeathTests(TestCase):
    """kill -9 of a node under load."""

    async def test_killed_node_users_leave_everywhere_and_nothing_is_lost(self) -> None:
        await self.kill_under_load()

    async def test_with_a_database_every_delivered_message_is_stored(self) -> None:
        database = pgsupport.fresh_database(self)
        delivered = await self.kill_under_load("--db", database)
        with psycopg.connect(database) as connection:
            rows = connection.execute("SELECT id, text FROM muca_messages").fetchall()
        stored = {(id_, bytes(text).decode()) for id_, text in rows}
        self.assertEqual(stored, delivered)

    async def kill_under_load(self, *args: str) -> set[tuple[int, str]]:
        """Kill node three while nodes one and two send; return the (id,
        text) of every message delivered."""
        redis = start_redis(self)
        args = (*HEARTBEAT_TIMEOUT, *args)
        one = await start_node(self, redis, *args)
        two = await start_node(self, redis, *args)
        three = await start_node(self, redis, *args)
        tony = await join_on(self, one, *TONY)
        mary = await join_on(self, two, *MARY)
        await join_on(self, three, *HENRY)
        await join_on(self, three, *PETER)
        for client in (tony, mary):
            await roster_becomes(client, [TONY, MARY, HENRY, PETER])
        sent: dict[str, set[str]] = {TONY[1]: set(), MARY[1]: set()}
        for round_ in range(200):
            if round_ == 50:
                os.kill(three.pid, signal.SIGKILL)
            for sender, (_, uid) in ((tony, TONY), (mary, MARY)):
                text = f"{uid} {round_}"
                sender.send_json(send(text, [], uid))
                sent[uid].add(text)
            await pause(0.01)
        # Henry and Peter leave for everyone else: the others find node three
        # silent for the heartbeat timeout (3 s here) within a beat; the
        # wait is bounded generously, for a loaded machine.
        for client in (tony, mary):
            await roster_becomes(client, [TONY, MARY])
        # Every message from the live nodes reached the other one, once.
        await received_all(tony, sent[MARY[1]])
        await received_all(mary, sent[TONY[1]])
        for client in (tony, mary):
            got = messages(client)
            self.assertEqual(len(got), 200)
            ids = [m["ID"] for m in got]
            self.assertEqual(ids, sorted(set(ids)))
        return {(m["ID"], m["MSG"]) for c in (tony, mary) for m in messages(c)}

    async def test_a_restarted_node_starts_clean(self) -> None:
        redis = start_redis(self)
        one = await start_node(self, redis, *HEARTBEAT_TIMEOUT)
        two = await start_node(self, redis, *HEARTBEAT_TIMEOUT)
        tony = await join_on(self, one, *TONY)
        await join_on(self, two, *MARY)
        await roster_becomes(tony, [TONY, MARY])
        os.kill(two.pid, signal.SIGKILL)
        await roster_becomes(tony, [TONY])
        again = await start_node(self, redis, *HEARTBEAT_TIMEOUT)
        # Mary's id is free again, on the new node.
        mary = await join_on(self, again, *MARY)
        await roster_becomes(mary, [TONY, MARY])


async def tony_and_mary_apart(
    testcase: TestCase, redis: RedisServer
) -> tuple[Twistd, Twistd, RawClient, RawClient]:
    """Two nodes, Tony joined on the first and Mary on the second, Tony's
    roster showing both."""
    one = await start_node(testcase, redis)
    two = await start_node(testcase, redis)
    tony = await join_on(testcase, one, *TONY)
    mary = await join_on(testcase, two, *MARY)
    await roster_becomes(tony, [TONY, MARY])
    return one, two, tony, mary


class RedisFaultTests(TestCase):
    """Redis killed and restarted empty; Redis paused for a few seconds."""

    async def test_redis_restarted_empty(self) -> None:
        redis = start_redis(self)
        one, two, tony, mary = await tony_and_mary_apart(self, redis)
        await roster_becomes(mary, [TONY, MARY])
        tony.send_json(send("before", [], TONY[1]))
        before = await next_of(mary, "MSG")

        since = len(one.process.output)
        redis.kill()
        # Node one has noticed (its heartbeat failed), so the SEND is refused
        # at once rather than left waiting for an answer.
        await logged(one, "cluster: Redis unreachable", since)
        # While Redis is down: SEND gets ERROR, JOIN gets ACK FAIL; no MSG.
        tony.send_json(send("during", [], TONY[1]))
        error = await next_of(tony, "ERROR")
        self.assertEqual((error["CODE"], error["REF"]), ("CLUSTER_UNAVAILABLE", "SEND"))
        newcomer = await connect(self, one.port)
        newcomer.send_json(join(*HENRY))
        ack = await newcomer.next_object(WAIT)
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "CLUSTER_UNAVAILABLE"))
        self.assertIn("cannot be reached", ack["REASON"])

        redis.start()
        # Within seconds the nodes registered their users again: a newcomer
        # still cannot take Mary's id, and messages flow again.
        deadline = time.monotonic() + 2 * WAIT
        while True:
            probe = await connect(self, one.port)
            probe.send_json(join("Other", MARY[1]))
            ack = await probe.next_object(WAIT)
            probe.close()
            if ack.get("CODE") == "UID_TAKEN" or time.monotonic() > deadline:
                break
            await pause(0.3)
        self.assertEqual(ack.get("CODE"), "UID_TAKEN")
        tony.send_json(send("after", [], TONY[1]))
        after = await next_of(mary, "MSG")
        self.assertEqual(after["MSG"], "after")
        self.assertGreater(after["ID"], before["ID"])
        self.assertNotIn("during", {m["MSG"] for m in messages(mary)})
        henry = await join_on(self, two, *HENRY)
        for client in (tony, mary, henry):
            await roster_becomes(client, [TONY, MARY, HENRY])

    async def test_a_batch_found_not_on_the_stream_is_refused_and_forgotten(
        self,
    ) -> None:
        redis = start_redis(self)
        one, two, tony, mary = await tony_and_mary_apart(self, redis)
        tony.send_json(send("before", [], TONY[1]))
        self.assertEqual((await next_of(mary, "MSG"))["MSG"], "before")

        since = len(one.process.output)
        redis.pause()
        # Node one sends the batch to a Redis that answers nothing...
        tony.send_json(send("lost?", [], TONY[1]))
        await logged(one, "cluster: Redis unreachable", since)
        # ...so whether it was accepted is not known yet (a paused Redis runs
        # what it finds when it resumes), and Tony has heard nothing of it;
        # unless, on a loaded machine, node one handled the SEND only after
        # it had dropped its unanswered connection: never sent, refused at once.
        self.assertLessEqual(errors(tony, "CLUSTER_UNAVAILABLE"), 1)
        # Redis dies with the batch unread and comes back empty: once node
        # one has read the new stream to its end, the batch is not on it.
        redis.kill()
        redis.start()
        error = await next_of(tony, "ERROR", 2 * WAIT)
        self.assertEqual((error["CODE"], error["REF"]), ("CLUSTER_UNAVAILABLE", "SEND"))
        # Refused while the cluster is still settling.
        refused = await sends_until_delivered(
            self, tony, TONY[1], mary, "CLUSTER_UNAVAILABLE"
        )
        # Refused once, and never delivered to anyone, also not later.
        self.assertEqual(errors(tony, "CLUSTER_UNAVAILABLE"), 1 + refused)
        self.assertNotIn("lost?", {m["MSG"] for m in messages(mary)})
        mary.send_json(send("last", [], MARY[1]))
        await received_all(tony, {"last"})
        self.assertNotIn("lost?", {m["MSG"] for m in messages(tony)})

    async def test_redis_paused_loses_and_doubles_nothing(self) -> None:
        redis = start_redis(self)
        one, two, tony, mary = await tony_and_mary_apart(self, redis)
        await roster_becomes(mary, [TONY, MARY])
        sent = []
        for round_ in range(120):
            if round_ == 20:
                redis.pause()
            if round_ == 80:
                redis.resume()
            text = f"m{round_}"
            tony.send_json(send(text, [], TONY[1]))
            sent.append(text)
            await pause(0.05)
        # Every message is either delivered once or refused with ERROR (one
        # whose script got no answer is settled from the stream, later).
        deadline = time.monotonic() + 2 * WAIT
        while time.monotonic() < deadline:
            refused = errors(tony, "CLUSTER_UNAVAILABLE")
            got = [m["MSG"] for m in messages(mary)]
            if len(got) + refused >= len(sent):
                break
            await pause(0.1)
        await pause(0.5)
        refused = errors(tony, "CLUSTER_UNAVAILABLE")
        got = [m["MSG"] for m in messages(mary)]
        self.assertEqual(len(got), len(set(got)), "a message came twice")
        self.assertEqual(len(got) + refused, len(sent))
        self.assertTrue({f"m{i}" for i in range(20)} <= set(got))
        ids = [m["ID"] for m in messages(mary)]
        self.assertEqual(ids, sorted(set(ids)))
        # Nobody left the room for it, and messages flow again.
        tony.send_json(send("later", [], TONY[1]))
        await received_all(mary, {"later"})
        self.assertNotIn(
            [{"UN": TONY[0], "UID": TONY[1]}],
            [o["DATA"] for o in mary.objects if o.get("CMD") == "LIST"],
        )
