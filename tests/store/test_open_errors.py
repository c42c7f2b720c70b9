"""What opening a store refuses: a file that is not a MUCA database (left
untouched), a path where no database can be, a read-only file system, file
or directory, a second server on the same SQLite file, an unreachable
PostgreSQL server; each with a readable one-line error that says what is
wrong."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

from twisted.trial.unittest import TestCase

from muca.store import StoreError
from muca.store.postgres import PostgresStore
from muca.store.sqlite import SQLiteStore
from tests.store.support import PostgresBackend, SQLiteBackend, message
from tests.support import postgres as pgsupport
from tests.support.disk import loop_mount, remount_read_only
from tests.support.twistd import fresh_directory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


#: Opens the store at argv[1] as ``nobody`` when run by root (root ignores
#: permission bits), as the user running the tests otherwise; prints the
#: error, or "opened".
OPEN_AS_ANOTHER_USER = """
import os, pwd, sys
from muca.store import StoreError
from muca.store.sqlite import SQLiteStore
if os.geteuid() == 0:
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
store = SQLiteStore(sys.argv[1])
try:
    store.open_blocking()
except StoreError as error:
    print(error)
else:
    store.close_blocking()
    print("opened")
"""


def open_as_another_user(path: str) -> str:
    """What opening the store at ``path`` says to a user who does not own
    it (see OPEN_AS_ANOTHER_USER)."""
    done = subprocess.run(
        [sys.executable, "-c", OPEN_AS_ANOTHER_USER, path],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


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

    async def test_a_read_only_file_system_says_so(self) -> None:
        mountpoint = loop_mount(self, read_only=True)
        with self.assertRaises(StoreError) as caught:
            await SQLiteStore(os.path.join(mountpoint, "muca.db")).open()
        self.assertEqual(
            str(caught.exception),
            f"cannot create muca.db in {mountpoint}: the file system is read-only",
        )

    async def test_a_database_on_a_file_system_remounted_read_only_says_so(
        self,
    ) -> None:
        mountpoint = loop_mount(self)
        path = os.path.join(mountpoint, "muca.db")
        store = SQLiteStore(path)
        await store.open()
        await store.append([message(1)])
        await store.close()
        remount_read_only(mountpoint)
        with self.assertRaises(StoreError) as caught:
            await SQLiteStore(path).open()
        self.assertEqual(
            str(caught.exception),
            f"message database {path} is read-only: its file system is mounted"
            " read-only",
        )

    def test_a_directory_without_write_permission_says_so(self) -> None:
        directory = fresh_directory(self)
        os.chmod(directory, 0o755)
        self.assertEqual(
            open_as_another_user(os.path.join(directory, "muca.db")),
            f"cannot create muca.db in {directory}: permission denied",
        )

    def test_a_directory_that_cannot_be_entered_says_so(self) -> None:
        directory = fresh_directory(self)
        inner = os.path.join(directory, "inner")
        os.mkdir(inner)
        os.chmod(directory, 0o700)
        path = os.path.join(inner, "muca.db")
        self.assertEqual(
            open_as_another_user(path),
            f"cannot open message database {path}: directory {inner} cannot be"
            " reached: permission denied",
        )

    async def test_a_database_without_write_permission_says_so(self) -> None:
        directory = fresh_directory(self)
        path = os.path.join(directory, "muca.db")
        store = SQLiteStore(path)
        await store.open()
        await store.append([message(1)])
        await store.close()
        os.chmod(directory, 0o777)
        os.chmod(path, 0o644)
        self.assertEqual(
            open_as_another_user(path),
            f"message database {path} is read-only: permission denied",
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
