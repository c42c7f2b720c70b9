"""A real ``twistd -n muca`` killed with SIGKILL while clients send, on
SQLite and on PostgreSQL: reopened, the search index and the messages are
equal (every stored message found by its own word, nothing indexed that is
not stored: FTS5's integrity check, PostgreSQL's rows), and what clients
received is found."""

from __future__ import annotations

import os
import signal
import sqlite3

import psycopg
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from muca.store import MessageStore
from muca.store.postgres import PostgresStore
from muca.store.search import parse
from muca.store.sqlite import SQLiteStore
from tests.support import RawClient, connect, join, send
from tests.support import postgres as pgsupport
from tests.support.twistd import fresh_directory, start_twistd

SENDERS = [(f"S{i}", f"s{i}") for i in range(3)]


class KilledWhileIndexingMixin:
    def db(self) -> str:
        raise NotImplementedError

    def store(self, database: str) -> MessageStore:
        raise NotImplementedError

    def check_index(self, database: str) -> None:
        """The index holds every message stored and nothing else."""
        raise NotImplementedError

    async def test_index_and_messages_stay_equal_across_a_kill(self) -> None:
        database = self.db()
        server = await start_twistd(self, "--db", database, "--rate-limit", "0")  # type: ignore[arg-type]
        clients: list[RawClient] = []
        for nickname, uid in SENDERS:
            client = await connect(self, server.port)  # type: ignore[arg-type]
            client.send_json(join(nickname, uid))
            await client.next_object()
            clients.append(client)
        await deferLater(reactor, 0.2)
        killed_at = None
        for burst in range(300):
            for (_, uid), client in zip(SENDERS, clients, strict=True):
                for i in range(10):
                    client.send_json(
                        send(f"w{uid}x{burst}x{i} café 東京タワー", [], uid)
                    )
            await deferLater(reactor, 0.02)
            if killed_at is None and sum(len(c.objects) for c in clients) > 300:
                os.kill(server.pid, signal.SIGKILL)
                killed_at = burst
            if killed_at is not None and burst >= killed_at + 2:
                break
        await server.process.ended()
        received = {
            o["MSG"] for c in clients for o in c.objects if o.get("CMD") == "MSG"
        }
        self.assertGreater(len(received), 100)

        store = self.store(database)
        await store.open()
        self.addCleanup(store.close)  # type: ignore[attr-defined]
        everything = await store.latest(None, False, 100_000)
        stored = [m.text for m in everything.messages]
        self.assertTrue(received <= set(stored))
        for text in stored[:: max(1, len(stored) // 40)]:
            word = text.split()[0]
            page = await store.search(None, False, parse(word))
            self.assertEqual([m.text for m in page.messages], [text])
        found = await store.search(None, False, parse("cafe 東京タワー"), limit=50)
        self.assertEqual([m.text for m in found.messages], stored[-50:])
        await store.close()
        self.check_index(database)


class SQLiteKilledTests(KilledWhileIndexingMixin, TestCase):
    def db(self) -> str:
        return os.path.join(fresh_directory(self), "muca.db")

    def store(self, database: str) -> MessageStore:
        return SQLiteStore(database)

    def check_index(self, database: str) -> None:
        db = sqlite3.connect(database)
        try:
            for table in ("muca_search_words", "muca_search_cjk"):
                # Raises when the index and the messages differ.
                db.execute(
                    f"INSERT INTO {table} ({table}, rank) VALUES ('integrity-check', 1)"
                )
            (cjk,) = db.execute("SELECT COUNT(*) FROM muca_search_cjk").fetchone()
            (total,) = db.execute("SELECT COUNT(*) FROM muca_messages").fetchone()
            self.assertEqual(cjk, total)
        finally:
            db.close()


class PostgresKilledTests(KilledWhileIndexingMixin, TestCase):
    def db(self) -> str:
        return pgsupport.fresh_database(self)

    def store(self, database: str) -> MessageStore:
        return PostgresStore(database)

    def check_index(self, database: str) -> None:
        with psycopg.connect(database) as db:
            missing, extra = db.execute(
                "SELECT (SELECT COUNT(*) FROM muca_messages AS m WHERE NOT EXISTS"
                " (SELECT 1 FROM muca_search AS s WHERE s.message_id = m.id)),"
                " (SELECT COUNT(*) FROM muca_search AS s WHERE NOT EXISTS"
                " (SELECT 1 FROM muca_messages AS m WHERE m.id = s.message_id))"
            ).fetchone()
        self.assertEqual((missing, extra), (0, 0))
