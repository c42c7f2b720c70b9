"""The cluster's shared history in PostgreSQL, and the options around it."""

from __future__ import annotations

import os
from typing import Any

import psycopg
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.python.usage import UsageError
from twisted.trial.unittest import TestCase

from muca.service import tap
from tests.cluster.support import (
    WAIT,
    join_on,
    next_of,
    roster_becomes,
    sends_until_delivered,
    start_node,
)
from tests.support import OKAY, RawClient, connect, join, send
from tests.support import postgres as pgsupport
from tests.support.redis import start_redis
from tests.support.twistd import TWISTD, fresh_directory

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
CAROL = ("Carol", "carol@hku.hk")
AUTH = ("--auth", "memory:tony@hku.hk:t:mary@hku.hk:m:carol@hku.hk:c")
PASSWORDS = {"tony@hku.hk": "t", "mary@hku.hk": "m", "carol@hku.hk": "c"}


def history_join(who: tuple[str, str], **extra: Any) -> dict[str, Any]:
    """A JOIN asking for the history, with the password AUTH wants."""
    return join(*who, CAPS=["history"], PASS=PASSWORDS[who[1]], **extra)


def plain(obj: dict[str, Any]) -> tuple[Any, ...]:
    """A MSG as (TYPE, MSG, FROM, HIST); anything else as (CMD, MORE or CODE)."""
    if obj.get("CMD") != "MSG":
        return (obj.get("CMD"), obj.get("MORE", obj.get("CODE")))
    return (obj["TYPE"], obj["MSG"], obj["FROM"], obj.get("HIST", False))


async def until_marker(client: RawClient) -> list[dict[str, Any]]:
    """What ``client`` receives up to its HISTORY marker (or a refusal)."""
    received = []
    for _ in range(1100):
        obj = await client.next_object(WAIT)
        received.append(obj)
        if obj.get("CMD") in ("HISTORY", "ERROR") or obj.get("TYPE") == "FAIL":
            break
    return received


async def history_on(
    testcase: TestCase, port: int, who: tuple[str, str], **extra: Any
) -> tuple[RawClient, list[dict[str, Any]]]:
    """Join with the history; the client and what came up to its marker."""
    client = await connect(testcase, port)
    client.send_json(history_join(who, **extra))
    return client, await until_marker(client)


async def stored(
    testcase: TestCase, client: RawClient, count: int
) -> list[dict[str, Any]]:
    """Wait (bounded) until ``client``'s scroll-back shows ``count`` messages;
    that page, with its marker."""
    page: list[dict[str, Any]] = []
    for _ in range(300):
        client.send_json({"CMD": "HISTORY", "BEFORE": 10**12, "LIMIT": 200})
        page = await until_marker(client)
        if len(page) - 1 >= count or page[-1].get("CMD") != "HISTORY":
            return page
        await deferLater(reactor, 0.1)
    testcase.fail(f"{count} messages were not stored: {page}")


class SharedHistoryTests(TestCase):
    """Every node stores in one PostgreSQL database, before delivering."""

    async def test_messages_from_every_node_are_stored_with_their_ids(self) -> None:
        redis = start_redis(self)
        database = pgsupport.fresh_database(self)
        one = await start_node(self, redis, "--db", database)
        two = await start_node(self, redis, "--db", database)
        tony = await join_on(self, one, *TONY)
        mary = await join_on(self, two, *MARY)
        await roster_becomes(tony, [TONY, MARY])
        await roster_becomes(mary, [TONY, MARY])
        delivered = []
        for round_ in range(10):
            tony.send_json(send(f"t{round_}", [], TONY[1]))
            mary.send_json(send(f"m{round_}", [TONY[1]], MARY[1]))
        for _ in range(10):
            got = await next_of(mary, "MSG")
            delivered.append((got["ID"], got["FROM"], got["MSG"]))
        for _ in range(10):
            got = await next_of(tony, "MSG")
            delivered.append((got["ID"], got["FROM"], got["MSG"]))
        with psycopg.connect(database) as connection:
            rows = connection.execute(
                "SELECT id, sender, text FROM muca_messages ORDER BY id"
            ).fetchall()
        stored = [(id_, sender, bytes(text).decode()) for id_, sender, text in rows]
        self.assertEqual(stored, sorted(delivered))


class ClusterHistoryTests(TestCase):
    """Replay, SINCE, HISTORY BEFORE and offline delivery read the shared
    PostgreSQL history, whichever node the messages were sent on."""

    async def test_replay_scroll_back_and_since_across_nodes(self) -> None:
        redis = start_redis(self)
        database = pgsupport.fresh_database(self)
        one = await start_node(self, redis, "--db", database, *AUTH)
        two = await start_node(self, redis, "--db", database, *AUTH)
        tony, _ = await history_on(self, one.port, TONY)
        for i in range(1, 4):
            tony.send_json(send(f"m{i}", [], TONY[1]))
        await stored(self, tony, 3)
        # Mary joins on the other node: Tony's words as her replay.
        mary, got = await history_on(self, two.port, MARY)
        self.assertEqual(got[0], OKAY)
        self.assertEqual(got[1]["CMD"], "LIST")
        self.assertEqual(
            [plain(o) for o in got[2:]],
            [
                ("ALL", "m1", TONY[1], True),
                ("ALL", "m2", TONY[1], True),
                ("ALL", "m3", TONY[1], True),
                ("HISTORY", False),
            ],
        )
        ids = [o["ID"] for o in got[2:5]]
        self.assertEqual(ids, sorted(ids))
        # Scroll-back on node two: what is older than m2.
        mary.send_json({"CMD": "HISTORY", "BEFORE": ids[1], "LIMIT": 10})
        older = await until_marker(mary)
        self.assertEqual(
            [plain(o) for o in older],
            [("ALL", "m1", TONY[1], True), ("HISTORY", False)],
        )
        # Mary goes; Tony says more on node one; Mary comes back on node one
        # and catches up from the last id she saw on node two.
        await mary.close()
        await roster_becomes(tony, [TONY])
        for i in range(4, 6):
            tony.send_json(send(f"m{i}", [], TONY[1]))
        await stored(self, tony, 5)
        again, got = await history_on(self, one.port, MARY, SINCE=ids[2])
        self.assertEqual(
            [plain(o) for o in got[2:]],
            [
                ("ALL", "m4", TONY[1], True),
                ("ALL", "m5", TONY[1], True),
                ("HISTORY", False),
            ],
        )
        # And live messages go on after the replay, once each.
        tony.send_json(send("m6", [], TONY[1]))
        self.assertEqual(
            plain(await next_of(again, "MSG")), ("ALL", "m6", TONY[1], False)
        )

    async def test_offline_delivery_to_a_user_known_on_another_node(self) -> None:
        redis = start_redis(self)
        database = pgsupport.fresh_database(self)
        one = await start_node(self, redis, "--db", database, *AUTH)
        two = await start_node(self, redis, "--db", database, *AUTH)
        tony, _ = await history_on(self, two.port, TONY)
        # Carol has been here once, on node one, while node two ran.
        carol, _ = await history_on(self, one.port, CAROL)
        await roster_becomes(tony, [TONY, CAROL])
        await carol.close()
        await roster_becomes(tony, [TONY])
        # Node two knows her: a private message to her is kept, not refused.
        tony.send_json(send("while you were out", [CAROL[1]], TONY[1]))
        self.assertEqual(
            [plain(o) for o in await stored(self, tony, 1)],
            [("PRIVATE", "while you were out", TONY[1], True), ("HISTORY", False)],
        )
        # A node started later knows her from the database.
        three = await start_node(self, redis, "--db", database, *AUTH)
        mary, _ = await history_on(self, three.port, MARY)
        mary.send_json(send("from three", [CAROL[1]], MARY[1]))
        self.assertEqual(
            [plain(o) for o in await stored(self, mary, 1)],
            [("PRIVATE", "from three", MARY[1], True), ("HISTORY", False)],
        )
        carol, got = await history_on(self, one.port, CAROL)
        self.assertEqual(
            [plain(o) for o in got[2:]],
            [
                ("PRIVATE", "while you were out", TONY[1], True),
                ("PRIVATE", "from three", MARY[1], True),
                ("HISTORY", False),
            ],
        )


class ClusterStoreFailureTests(TestCase):
    """The shared database stops under a running cluster: senders hear
    STORE_UNAVAILABLE (not CLUSTER_UNAVAILABLE: Redis is fine), and the
    cluster works again once the database is back."""

    async def test_postgres_stopped_then_started_again(self) -> None:
        redis = start_redis(self)
        server = pgsupport.private_server(self)
        one = await start_node(self, redis, "--db", server.conninfo())
        two = await start_node(self, redis, "--db", server.conninfo())
        tony = await join_on(self, one, *TONY)
        mary = await join_on(self, two, *MARY)
        await roster_becomes(tony, [TONY, MARY])
        tony.send_json(send("stored", [], TONY[1]))
        self.assertEqual((await next_of(mary, "MSG"))["MSG"], "stored")
        pgsupport.stop(server)
        tony.send_json(send("lost?", [], TONY[1]))
        error = await next_of(tony, "ERROR", 60.0)
        self.assertEqual((error["CODE"], error["REF"]), ("STORE_UNAVAILABLE", "SEND"))
        pgsupport.start(server)
        await sends_until_delivered(self, tony, TONY[1], mary, "STORE_UNAVAILABLE")
        # What was refused was never delivered.
        self.assertFalse(any(o.get("MSG") == "lost?" for o in mary.objects))


class OptionTests(TestCase):
    """--cluster refuses what cannot work, in one line."""

    async def _refused(self, *args: str) -> str:
        from twisted.internet import utils

        out, err, code = await utils.getProcessOutputAndValue(
            TWISTD[0],
            [*TWISTD[1:], "-n", "--pidfile=", "muca", *args],
            env=dict(os.environ),
            path=fresh_directory(self),
        )
        self.assertNotEqual(code, 0)
        text = (out + err).decode()
        self.assertNotIn("Traceback", text)
        return text

    async def test_local_sqlite_file_is_refused(self) -> None:
        text = await self._refused(
            "--cluster", "redis://127.0.0.1:1/0", "--db", "history.sqlite"
        )
        self.assertIn("--cluster needs a history every server shares", text)

    async def test_bad_cluster_url_is_refused(self) -> None:
        text = await self._refused("--cluster", "http://127.0.0.1:6379")
        self.assertIn("--cluster: not a redis://host:port/db URL", text)

    async def test_a_heartbeat_timeout_below_two_seconds_is_refused(self) -> None:
        text = await self._refused(
            "--cluster", "redis://127.0.0.1:1/0", "--heartbeat-timeout", "1.5"
        )
        message = "--heartbeat-timeout: '1.5' is not a number of seconds of at least 2"
        errors = [line for line in text.splitlines() if message in line]
        self.assertEqual(len(errors), 1, text)
        # twistd's usage line, a pointer to --help, and the mistake.
        self.assertLessEqual(len(text.splitlines()), 3, text)

    def test_the_heartbeat_timeout_reaches_the_bus(self) -> None:
        def bus(*args: str) -> Any:
            options = tap.Options()
            options.parseOptions(
                ["--web", "none", "--cluster", "redis://127.0.0.1:1/0", *args]
            )
            return tap.makeService(options).bus

        self.assertEqual(bus().heartbeat_timeout, 5.0)
        self.assertEqual(bus("--heartbeat-timeout", "2.5").heartbeat_timeout, 2.5)
        for wrong in ("0", "-3", "1.99", "inf", "nan", "soon", ""):
            with self.assertRaises(UsageError) as raised:
                bus("--heartbeat-timeout", wrong)
            self.assertIn("--heartbeat-timeout: ", str(raised.exception))
