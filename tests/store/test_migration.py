"""Schema migration: a new database gets schema version 2, a version 1
database is migrated once and reads the same, and a newer schema is refused;
on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from twisted.trial.unittest import TestCase

from muca.store import ChatMessage, StoreError, may_read
from tests.store.support import (
    PostgresBackend,
    SQLiteBackend,
    StoreCase,
    busy_conversation,
    ids,
    message,
)

#: The tables of schema version 1 as that release made them (``{id}`` and
#: ``{text}``: each backend's types), for the migration tests.
VERSION_1_SCHEMA = [
    """CREATE TABLE muca_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """INSERT INTO muca_meta (key, value) VALUES ('schema_version', '1')""",
    """CREATE TABLE muca_messages (
        id {id} PRIMARY KEY,
        ts BIGINT NOT NULL,
        sender TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('ALL', 'GROUP', 'PRIVATE')),
        text {text} NOT NULL)""",
    "CREATE INDEX muca_messages_kind_id ON muca_messages (kind, id)",
    "CREATE INDEX muca_messages_sender_id ON muca_messages (sender, id)",
    """CREATE TABLE muca_recipients (
        message_id BIGINT NOT NULL REFERENCES muca_messages (id),
        position INTEGER NOT NULL,
        uid TEXT NOT NULL,
        PRIMARY KEY (message_id, position))""",
    "CREATE INDEX muca_recipients_uid_id ON muca_recipients (uid, message_id)",
    "CREATE TABLE muca_users (uid TEXT PRIMARY KEY)",
]

#: The indexes of schema version 2 (without those of primary keys).
VERSION_2_INDEXES = {"muca_messages_kind_id"}


def version_1_rows(
    messages: list[ChatMessage], encode: Any
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows of muca_messages and muca_recipients as version 1 wrote them."""
    return (
        [(m.id, m.ts, m.sender, m.kind, encode(m.text)) for m in messages],
        [(m.id, n, uid) for m in messages for n, uid in enumerate(m.recipients)],
    )


class MigrationBehaviour(StoreCase):
    """The schema versions; mixed into one TestCase per backend, which gives
    the hooks that read and write its database behind the store."""

    def set_schema_version(self, version: int) -> None:
        """Write ``version`` into the database's muca_meta, behind the store."""
        raise NotImplementedError

    def schema(self) -> tuple[str, set[str]]:
        """The database's schema version and the names of its indexes."""
        raise NotImplementedError

    def make_version_1_database(self, messages: list[ChatMessage]) -> None:
        """Create this test's database as schema version 1 held ``messages``."""
        raise NotImplementedError

    async def test_a_new_database_has_the_version_2_schema(self) -> None:
        await (await self.opened()).close()
        self.assertEqual(self.schema(), ("2", VERSION_2_INDEXES))

    async def test_a_version_1_database_is_migrated_and_reads_the_same(self) -> None:
        old = busy_conversation(120)
        self.make_version_1_database(old)
        store = await self.opened()
        self.assertEqual(store.last_id(), 120)
        for reader in ("alice", "dave", "frank", "mallory"):
            expected = [m.id for m in old if may_read(m, reader, True)]
            self.assertEqual(await self.read_all(store, reader), expected, reader)
        page = await store.latest("bob", True, 500)
        self.assertEqual(page.messages, [m for m in old if may_read(m, "bob", True)])
        new = message(121, "frank", "PRIVATE", ("alice",))
        await store.append([new])
        self.assertEqual((await store.latest("frank", True, 1)).messages, [new])
        await store.close()
        # Migrated once: a second open finds version 2 and the same messages.
        again = await self.opened()
        self.assertEqual(ids(await again.latest("alice", True, 1)), [121])
        self.assertEqual(self.schema(), ("2", VERSION_2_INDEXES))

    async def test_a_newer_schema_is_refused(self) -> None:
        store = await self.opened()
        await store.close()
        self.set_schema_version(99)
        with self.assertRaises(StoreError) as caught:
            await self.new_store().open()
        self.assertIn("schema version 99 is newer", str(caught.exception))


class SQLiteMigrationTests(SQLiteBackend, MigrationBehaviour, TestCase):
    """Schema versions of an SQLite file."""

    def set_schema_version(self, version: int) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute(
                "UPDATE muca_meta SET value = ? WHERE key = 'schema_version'",
                (str(version),),
            )
        db.close()

    def schema(self) -> tuple[str, set[str]]:
        with sqlite3.connect(self.path) as db:
            version = db.execute(
                "SELECT value FROM muca_meta WHERE key = 'schema_version'"
            ).fetchone()[0]
            names = db.execute(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'index' AND sql IS NOT NULL"
            ).fetchall()
        db.close()
        return version, {name for (name,) in names}

    def make_version_1_database(self, messages: list[ChatMessage]) -> None:
        with sqlite3.connect(self.path) as db:
            for statement in VERSION_1_SCHEMA:
                db.execute(statement.format(id="INTEGER", text="TEXT"))
            rows, recipients = version_1_rows(messages, lambda text: text)
            db.executemany("INSERT INTO muca_messages VALUES (?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO muca_recipients VALUES (?, ?, ?)", recipients)
        db.close()


class PostgresMigrationTests(PostgresBackend, MigrationBehaviour, TestCase):
    """Schema versions of a real PostgreSQL database."""

    def set_schema_version(self, version: int) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as db:
            db.execute(
                "UPDATE muca_meta SET value = %s WHERE key = 'schema_version'",
                (str(version),),
            )

    def schema(self) -> tuple[str, set[str]]:
        with psycopg.connect(self.conninfo) as db:
            version = db.execute(
                "SELECT value FROM muca_meta WHERE key = 'schema_version'"
            ).fetchone()
            names = db.execute(
                "SELECT indexname FROM pg_indexes"
                " WHERE tablename LIKE 'muca%' AND indexname NOT LIKE '%_pkey'"
            ).fetchall()
        return (version[0] if version else ""), {name for (name,) in names}

    def make_version_1_database(self, messages: list[ChatMessage]) -> None:
        with psycopg.connect(self.conninfo) as db:
            for statement in VERSION_1_SCHEMA:
                db.execute(statement.format(id="BIGINT", text="BYTEA"))
            rows, recipients = version_1_rows(messages, str.encode)
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO muca_messages VALUES (%s, %s, %s, %s, %s)", rows
                )
                cursor.executemany(
                    "INSERT INTO muca_recipients VALUES (%s, %s, %s)", recipients
                )
