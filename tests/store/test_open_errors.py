"""What opening a store refuses: a file that is not a MUCA database (left
untouched), a path where no database can be, a second server on the same
SQLite file, an unreachable PostgreSQL server; each with a readable one-line
error."""

from __future__ import annotations

import os
import sqlite3

from twisted.trial.unittest import TestCase

from muca.store import StoreError
from muca.store.postgres import PostgresStore
from muca.store.sqlite import SQLiteStore
from tests.store.support import PostgresBackend, SQLiteBackend, message
from tests.support import postgres as pgsupport


class SQLiteOpenErrorTests(SQLiteBackend, TestCase):
    """SQLite's refusals at open."""

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


class PostgresOpenErrorTests(PostgresBackend, TestCase):
    """PostgreSQL's refusals at open."""

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
