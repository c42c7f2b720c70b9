"""SQLite's spool and crash recovery: what ``append`` reported stored
survives kill -9, a killed server's spool is stored at the next open,
spooled messages are readable before SQLite has them and go into it a batch
at a time, and a failing SQLite makes the store refuse new messages until it
works again."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from muca.store import StoreError, may_read
from muca.store.spool import Spool
from muca.store.sqlite import SQLiteStore
from tests.store.support import SQLiteBackend, busy_conversation, ids, message
from tests.support import TIMEOUT, until

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


class SQLiteSpoolTests(SQLiteBackend, TestCase):
    """The SQLite store's spool, its move into SQLite, and kill -9."""

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

    async def test_spooled_nicknames_are_stored_and_older_lines_still_read(
        self,
    ) -> None:
        await (await self.opened()).close()
        spool = Spool(self.path)
        with open(spool.path(1), "wb") as f:
            # A line of a release before nicknames, then two of this one
            # (the second with U+0000, which takes the other way in).
            f.write(b'[[1,1,"alice","ALL",[],"old"]]\n')
            f.write(b'[[2,2,"bob","ALL",[],"new","Bob"]]\n')
            f.write(b'[[3,3,"carol","ALL",[],"nul\\u0000","Carol"]]\n')
        store = await self.opened()
        page = await store.latest("eve", True, 10)
        self.assertEqual(
            [(m.id, m.text, m.nickname) for m in page.messages],
            [(1, "old", None), (2, "new", "Bob"), (3, "nul\x00", "Carol")],
        )

    async def test_spooled_rooms_are_stored_and_lines_without_rooms_still_read(
        self,
    ) -> None:
        store = SQLiteStore(self.path, ingest_count=10_000, ingest_delay=3600)
        await store.open()
        await store.append([message(1, room="dev"), message(2)])
        # Read from the spool, before SQLite has them.
        self.assertEqual(ids(await store.latest(None, False, 5, rooms=["dev"])), [1])
        await store.close()
        spool = Spool(self.path)
        with open(spool.path(9), "wb") as f:
            # Lines of the releases before rooms: the default room's.
            f.write(b'[[3,3,"bob","ALL",[],"older","Bob"]]\n')
            f.write(b'[[4,4,"bob","ALL",[],"nul\\u0000","Bob"]]\n')
            f.write(b'[[5,5,"bob","ALL",[],"in ops","Bob","ops"]]\n')
        store = await self.opened()
        page = await store.latest(None, False, 10, rooms=["", "dev", "ops"])
        self.assertEqual(
            [(m.id, m.room) for m in page.messages],
            [(1, "dev"), (2, ""), (3, ""), (4, ""), (5, "ops")],
        )
        self.assertEqual(ids(await store.latest(None, False, 10)), [2, 3, 4])

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

    async def test_spooled_messages_go_into_sqlite_a_batch_at_a_time(self) -> None:
        store = await self.opened()
        with sqlite3.connect(self.path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for i in range(1, 201):
                await store.append([message(i)])

            def stored() -> int:
                (count,) = db.execute("SELECT COUNT(*) FROM muca_messages").fetchone()
                return count

            # Moved in within 50 ms, unless the machine is busy.
            await until(lambda: stored() == 200, TIMEOUT, "200 messages in SQLite")
            # Pages written to the log since the checkpoint: a few per
            # commit, so 200 commits would have written 400 or more.
            _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        db.close()
        self.assertLess(frames, 60)

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
            # RETRY_DELAY is 1 s.
            await until(lambda: store.refusing is None, TIMEOUT, "the retry")
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

    async def test_a_locked_database_bounds_what_waits_for_it_and_loses_none(
        self,
    ) -> None:
        store = SQLiteStore(
            self.path, ingest_count=1, ingest_delay=0, unstored_bytes=4096
        )
        await store.open()
        self.addCleanup(store.close)
        # Another program holds SQLite's write lock: the spool takes messages,
        # SQLite none (the store waits up to its 10 s busy timeout).
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN EXCLUSIVE")
        behind = (
            f"message database {self.path}: the database is behind, too many"
            " messages wait to be written into it"
        )
        accepted: list[int] = []
        refused: list[str] = []
        for i in range(1, 21):  # about 560 bytes each: 4096 holds 7
            try:
                await store.append([message(i, text="x" * 500)])
                accepted.append(i)
            except StoreError as exc:
                refused.append(str(exc))
        self.assertEqual(accepted, list(range(1, 9)))
        self.assertEqual(refused, [behind] * 12)
        other.execute("ROLLBACK")
        with sqlite3.connect(self.path) as db:
            for _ in range(500):  # the lock is free: moved in within 5 s
                (count,) = db.execute("SELECT COUNT(*) FROM muca_messages").fetchone()
                if count == len(accepted):
                    break
                await deferLater(reactor, 0.01)
        db.close()
        await store.append([message(21)])
        self.assertEqual(ids(await store.latest("eve", True, 30)), [*accepted, 21])

    async def test_the_file_is_in_wal_mode(self) -> None:
        await self.opened()
        with sqlite3.connect(self.path) as db:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        db.close()
        self.assertEqual(mode, "wal")
