"""Tests of muca.store: the same behaviour on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import psycopg
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from muca.store import StoreError, may_read, open_store
from muca.store.postgres import PostgresStore
from muca.store.spool import Spool
from muca.store.sqlite import SQLiteStore
from tests.store.support import (
    CONVERSATION,
    PostgresBackend,
    SQLiteBackend,
    StoreCase,
    busy_conversation,
    ids,
    message,
)
from tests.support import postgres as pgsupport

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: A writer process for the kill -9 test: appends, reports, then waits.
KILLED_WRITER = """
import sys, time
from twisted.internet import reactor
from muca.store import ChatMessage
from muca.store.spool import Spool
from muca.store.sqlite import SQLiteStore

async def main():
    if sys.argv[2:] == ["spool-only"]:
        store = SQLiteStore(sys.argv[1], ingest_count=10**9, ingest_delay=3600)
    else:
        store = SQLiteStore(sys.argv[1])
    await store.open()
    for start in (1, 101, 201):
        await store.append([
            ChatMessage(i, i, "alice", "PRIVATE", ("bob",), f"m{i}")
            for i in range(start, start + 100)
        ])
    print("stored", flush=True)
    time.sleep(60)

def failed(failure):
    # Ends the child, so that the test reads end of file instead of waiting.
    print("failed:", failure.getErrorMessage(), flush=True)
    reactor.stop()

from twisted.internet.defer import ensureDeferred
reactor.callWhenRunning(lambda: ensureDeferred(main()).addErrback(failed))
reactor.run()
"""


class StoreBehaviour(StoreCase):
    """What every backend must do; mixed into one TestCase per backend."""

    async def test_a_new_database_is_empty(self) -> None:
        store = await self.opened()
        self.assertEqual(store.last_id(), 0)
        page = await store.latest("alice", True, 50)
        self.assertEqual((page.messages, page.more), ([], False))
        self.assertEqual(await store.known_users(), set())

    async def test_messages_and_last_id_survive_a_reopen(self) -> None:
        store = await self.opened()
        odd = message(7, "alice", "PRIVATE", ("bob",), text="nul\x00 é ✓ 🎉 \n end")
        await store.append([*CONVERSATION, odd])
        self.assertEqual(store.last_id(), 7)
        await store.close()
        again = await self.opened()
        self.assertEqual(again.last_id(), 7)
        page = await again.latest("bob", True, 50)
        self.assertEqual(
            page.messages, [m for m in [*CONVERSATION, odd] if may_read(m, "bob", True)]
        )
        await again.append([message(8)])
        self.assertEqual(again.last_id(), 8)

    async def test_many_messages_go_in_one_append(self) -> None:
        store = await self.opened()
        # More rows and recipients than SQLite's 999/32766 variables.
        batch = [
            message(i, "alice", "GROUP", ("bob", "carol", f"user{i}"))
            for i in range(1, 12_001)
        ]
        await store.append(batch)
        self.assertEqual(store.last_id(), 12_000)
        page = await store.latest("carol", True, 20_000)
        self.assertEqual(page.messages, batch)
        page = await store.latest("user77", True, 20_000)
        self.assertEqual(ids(page), [77])

    async def test_appends_made_at_once_fire_in_order_and_are_all_stored(
        self,
    ) -> None:
        store = await self.opened()
        fired: list[int] = []
        appends = [
            store.append([message(i)]).addCallback(lambda _, i=i: fired.append(i))
            for i in range(1, 201)
        ]
        for d in appends:
            await d
        self.assertEqual(fired, list(range(1, 201)))
        self.assertEqual(store.last_id(), 200)
        page = await store.latest("eve", True, 500)
        self.assertEqual(ids(page), list(range(1, 201)))
        # An id not above every one appended before is refused at once.
        with self.assertRaises(StoreError):
            await store.append([message(200)])

    async def test_ids_must_increase(self) -> None:
        store = await self.opened()
        await store.append([message(3)])
        for bad in ([message(3)], [message(5), message(4)], [message(9, kind="X")]):
            with self.assertRaises(StoreError):
                await store.append(bad)
        self.assertEqual(store.last_id(), 3)

    async def test_known_users_are_remembered_across_a_reopen(self) -> None:
        store = await self.opened()
        for uid in ("alice", "bob", "alice"):
            await store.remember_user(uid)
        self.assertEqual(await store.known_users(), {"alice", "bob"})
        await store.close()
        again = await self.opened()
        self.assertEqual(await again.known_users(), {"alice", "bob"})


class SQLiteStoreTests(SQLiteBackend, StoreBehaviour, TestCase):
    """The store behaviour on an SQLite file, and SQLite's own refusals."""

    async def assert_refused_untouched(self, content: bytes, words: str) -> None:
        """Opening a file holding ``content`` fails and leaves it as it was."""
        with open(self.path, "wb") as f:
            f.write(content)
        before = sorted(os.listdir(self.directory))
        with self.assertRaises(StoreError) as caught:
            await self.new_store().open()
        self.assertIn(words, str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), content)
        self.assertEqual(sorted(os.listdir(self.directory)), before)

    async def test_another_programs_sqlite_file_is_refused_untouched(self) -> None:
        other = os.path.join(self.directory, "other.db")
        with sqlite3.connect(other) as db:
            db.execute("CREATE TABLE invoices (n INTEGER, total REAL)")
            db.execute("INSERT INTO invoices VALUES (1, 9.5)")
        db.close()
        with open(other, "rb") as f:
            content = f.read()
        os.remove(other)
        await self.assert_refused_untouched(content, "not a MUCA database")

    async def test_a_file_of_random_bytes_is_refused_untouched(self) -> None:
        await self.assert_refused_untouched(os.urandom(8192), "not a MUCA database")

    async def test_a_corrupted_sqlite_file_is_refused_untouched(self) -> None:
        content = b"SQLite format 3\x00" + os.urandom(4080)
        await self.assert_refused_untouched(content, "not a MUCA database")

    async def test_a_missing_directory_is_a_readable_error(self) -> None:
        store = SQLiteStore(os.path.join(self.directory, "nowhere", "muca.db"))
        with self.assertRaises(StoreError) as caught:
            await store.open()
        self.assertIn("does not exist", str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))

    async def test_a_directory_where_no_file_can_be_made_is_a_readable_error(
        self,
    ) -> None:
        os.chmod(self.directory, 0o555)
        self.addCleanup(os.chmod, self.directory, 0o755)
        # Root ignores mode bits; /proc refuses new files to root as well.
        path = "/proc/muca.db" if os.geteuid() == 0 else self.path
        with self.assertRaises(StoreError) as caught:
            await SQLiteStore(path).open()
        self.assertEqual(
            str(caught.exception),
            f"cannot open message database {path}: unable to open database file",
        )

    async def test_a_directory_as_the_path_is_a_readable_error(self) -> None:
        with self.assertRaises(StoreError) as caught:
            await SQLiteStore(self.directory).open()
        self.assertIn("a directory", str(caught.exception))

    def kill_writer(self, *args: str) -> None:
        """Run KILLED_WRITER on this database and kill it (SIGKILL) once it
        said its appends fired, before it can close anything."""
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, self.path, *args],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            self.assertEqual(
                child.stdout.readline() if child.stdout else "", "stored\n"
            )
        finally:
            child.kill()  # SIGKILL, by the child's own pid.
            child.wait()
            if child.stdout:
                child.stdout.close()

    async def test_what_append_reported_stored_survives_kill_9(self) -> None:
        self.kill_writer()
        store = await self.opened()
        self.assertEqual(store.last_id(), 300)
        page = await store.latest("bob", True, 1000)
        self.assertEqual((len(page.messages), page.messages[-1].text), (300, "m300"))

    async def test_a_second_server_on_the_same_file_is_refused(self) -> None:
        first = await self.opened()
        await first.append([message(1)])
        with self.assertRaises(StoreError) as caught:
            await self.new_store().open()
        self.assertEqual(
            str(caught.exception),
            f"message database {self.path} is in use by another MUCA server",
        )
        await first.close()
        again = await self.opened()
        self.assertEqual(again.last_id(), 1)

    async def test_spooled_messages_are_read_before_sqlite_has_them(self) -> None:
        store = SQLiteStore(self.path, ingest_count=10_000, ingest_delay=3600)
        await store.open()
        self.addCleanup(store.close)
        old = busy_conversation(300)
        await store.append(old[:200])
        store._ingest()  # the first 200 into SQLite
        await store._ingest_done
        await store.append(old[200:])  # spooled only
        with sqlite3.connect(self.path) as db:
            (in_sqlite,) = db.execute("SELECT COUNT(*) FROM muca_messages").fetchone()
        db.close()
        self.assertEqual(in_sqlite, 200)
        for reader in ("alice", "frank", "mallory"):
            expected = [m.id for m in old if may_read(m, reader, True)]
            self.assertEqual(await self.read_all(store, reader), expected, reader)
            page = await store.before(reader, True, 250, 5)
            self.assertEqual(ids(page), [i for i in expected if i < 250][-5:])
            self.assertEqual((await store.latest(reader, True, 0)).messages, [])

    async def test_a_killed_servers_spool_is_stored_at_the_next_open(self) -> None:
        # The child keeps every message in the spool (no move into SQLite
        # before the kill), and dies in the middle of a line.
        self.kill_writer("spool-only")
        with sqlite3.connect(self.path) as db:
            (in_sqlite,) = db.execute("SELECT COUNT(*) FROM muca_messages").fetchone()
        db.close()
        self.assertEqual(in_sqlite, 0)
        spool = Spool(self.path)
        (number,) = spool.existing()
        with open(spool.path(number), "ab") as f:
            f.write(b'[301,301,"alice","PRIVATE",["bob"],"cut sh')
        store = await self.opened()
        self.assertEqual(store.last_id(), 300)
        page = await store.latest("bob", True, 1000)
        self.assertEqual(ids(page), list(range(1, 301)))
        self.assertEqual(page.messages[-1].text, "m300")
        # The old file went; the store writes a new one.
        self.assertEqual(spool.existing(), [number + 1])
        await store.append([message(301)])
        self.assertEqual(ids(await store.latest("eve", True, 1)), [301])

    async def test_sqlite_failing_later_refuses_new_messages_until_it_works(
        self,
    ) -> None:
        store = SQLiteStore(self.path, ingest_count=1, ingest_delay=0)
        await store.open()
        self.addCleanup(store.close)
        await store.append([message(1)])
        await store._ingest_done
        with capturedLogs() as events:
            # SQLite cannot take messages any more (here: its table is gone).
            with sqlite3.connect(self.path) as db:
                db.execute("ALTER TABLE muca_messages RENAME TO elsewhere")
            db.close()
            await store.append([message(2)])  # spooled; its move fails
            await store._ingest_done
            with self.assertRaises(StoreError) as caught:
                await store.append([message(3)])
            self.assertIn("no such table", str(caught.exception))
            # It works again: the store's retry moves message 2 in.
            with sqlite3.connect(self.path) as db:
                db.execute("ALTER TABLE elsewhere RENAME TO muca_messages")
            db.close()
            for _ in range(300):  # RETRY_DELAY is 1 s; 3 s at most
                if store.refusing is None:
                    break
                await deferLater(reactor, 0.01)
            await store.append([message(4)])
            await store._ingest_done
        said = [formatEvent(event) for event in events]
        self.assertEqual(len(said), 2, said)
        self.assertIn("cannot move spooled messages into", said[0])
        self.assertIn("no such table", said[0])
        self.assertEqual(
            said[1], f"muca: the message database {self.path} takes messages again"
        )
        self.assertEqual(ids(await store.latest("eve", True, 10)), [1, 2, 4])
        with sqlite3.connect(self.path) as db:
            stored = [row[0] for row in db.execute("SELECT id FROM muca_messages")]
        db.close()
        self.assertEqual(stored, [1, 2, 4])

    async def test_spooled_messages_go_into_sqlite_a_batch_at_a_time(self) -> None:
        store = await self.opened()
        with sqlite3.connect(self.path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for i in range(1, 201):
                await store.append([message(i)])
            for _ in range(200):  # moved in within 50 ms; 2 s at most
                (count,) = db.execute("SELECT COUNT(*) FROM muca_messages").fetchone()
                if count == 200:
                    break
                await deferLater(reactor, 0.01)
            self.assertEqual(count, 200)
            # Pages written to the log since the checkpoint: a few per
            # commit, so 200 commits would have written 400 or more.
            _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        db.close()
        self.assertLess(frames, 60)

    async def test_the_file_is_in_wal_mode(self) -> None:
        await self.opened()
        with sqlite3.connect(self.path) as db:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        db.close()
        self.assertEqual(mode, "wal")


class PostgresStoreTests(PostgresBackend, StoreBehaviour, TestCase):
    """The store behaviour on a real PostgreSQL server started by the tests."""

    async def test_a_failed_append_stores_nothing_of_its_batch(self) -> None:
        first = await self.opened()
        # Two servers on one database (a cluster's, without the cluster's
        # lock): the second's last_id (0) is out of date.
        second = await self.opened()
        await first.append([message(1), message(2)])
        with self.assertRaises(StoreError):
            await second.append([message(2), message(3)])
        page = await first.latest("eve", True, 50)
        self.assertEqual(ids(page), [1, 2])

    async def test_a_url_names_the_same_database(self) -> None:
        store = await self.opened()
        await store.append([message(1)])
        dbname = psycopg.conninfo.conninfo_to_dict(self.conninfo)["dbname"]
        url = pgsupport.postgres_server().url(str(dbname))
        by_url = PostgresStore(url)
        await by_url.open()
        self.addCleanup(by_url.close)
        self.assertEqual(by_url.last_id(), 1)

    async def test_an_unreachable_server_is_a_readable_error(self) -> None:
        port = pgsupport.free_port()
        store = PostgresStore(f"postgresql://muca@127.0.0.1:{port}/muca")
        with self.assertRaises(StoreError) as caught:
            await store.open()
        text = str(caught.exception)
        self.assertTrue(
            text.startswith(
                f"cannot open PostgreSQL database muca on 127.0.0.1:{port}:"
            ),
            text,
        )
        self.assertIn("refused", text)
        self.assertNotIn("\n", text)


class OpenStoreTests(TestCase):
    """``open_store`` picks the backend from the --db value."""

    def test_none_means_no_store(self) -> None:
        self.assertIsNone(open_store("none"))

    def test_urls_and_key_value_strings_mean_postgresql(self) -> None:
        for spec in (
            "postgresql://muca@db.example/chat",
            "postgres://db.example/chat",
            "host=db.example dbname=chat",
        ):
            store = open_store(spec)
            self.assertIsInstance(store, PostgresStore, spec)

    def test_anything_else_is_an_sqlite_path(self) -> None:
        store = open_store("/var/lib/muca/history.db")
        self.assertIsInstance(store, SQLiteStore)
        assert isinstance(store, SQLiteStore)
        self.assertEqual(store.path, "/var/lib/muca/history.db")
