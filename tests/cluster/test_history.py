"""The cluster's shared history in PostgreSQL, and the options around it."""

from __future__ import annotations

import os

import psycopg
from twisted.trial.unittest import TestCase

from tests import pgsupport
from tests.cluster.support import join_on, next_of, roster_becomes, start_node
from tests.support import send
from tests.support.redis import start_redis
from tests.support.twistd import TWISTD, fresh_directory

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")


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
