"""Schema migration: a new database gets schema version 7, a version 1 to 6
database is migrated once, to version 7 at once, and reads the same (its
messages and known users without a nickname before version 3, its messages
in the default room before version 4, no accounts before version 5, its
messages found by search once version 6 indexed them, no moderators, bans
or mutes before version 7), and a newer schema
is refused; on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from twisted.trial.unittest import TestCase

from muca.store import ChatMessage, MessageStore, StoreError, may_read
from muca.store.accounts import Account
from muca.store.base import KnownUser, Sanction, StoredRoom
from muca.store.search import parse
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

#: The tables of schema version 2 as that release made them: version 1's
#: without its per-user indexes, and the readers index (``{key_only}``:
#: SQLite's WITHOUT ROWID).
_META, _, _MESSAGES, _KIND_INDEX, _, _RECIPIENTS, _, _USERS = VERSION_1_SCHEMA
VERSION_2_SCHEMA = [
    _META,
    """INSERT INTO muca_meta (key, value) VALUES ('schema_version', '2')""",
    _MESSAGES,
    _KIND_INDEX,
    _RECIPIENTS,
    """CREATE TABLE muca_readers (
        uid TEXT NOT NULL,
        message_id BIGINT NOT NULL,
        PRIMARY KEY (uid, message_id)){key_only}""",
    _USERS,
]

#: The tables of schema version 3 as that release made them: version 2's
#: with the senders' nicknames and the known users' last nickname and time.
_, _, _, _, _, _READERS, _ = VERSION_2_SCHEMA
VERSION_3_SCHEMA = [
    _META,
    """INSERT INTO muca_meta (key, value) VALUES ('schema_version', '3')""",
    """CREATE TABLE muca_messages (
        id {id} PRIMARY KEY,
        ts BIGINT NOT NULL,
        sender TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('ALL', 'GROUP', 'PRIVATE')),
        text {text} NOT NULL,
        nickname TEXT)""",
    _KIND_INDEX,
    _RECIPIENTS,
    _READERS,
    "CREATE TABLE muca_users (uid TEXT PRIMARY KEY, nickname TEXT, seen BIGINT)",
]

#: What version 2 held beside its messages: two known users, the readers
#: index (every reader of the version's messages, see ``version_2_readers``).
VERSION_2_USERS = ["carol", "dave"]

#: The known users of version 3: with their last nickname and time.
VERSION_3_USERS = [("carol", "Carol", 7), ("dave", "Dave", 9)]

#: The tables of schema version 4 as that release made them: version 3's
#: with each message's room, the rooms, their invitations and the
#: accounts' rooms.
VERSION_4_SCHEMA = [
    _META,
    """INSERT INTO muca_meta (key, value) VALUES ('schema_version', '4')""",
    """CREATE TABLE muca_messages (
        id {id} PRIMARY KEY,
        ts BIGINT NOT NULL,
        sender TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('ALL', 'GROUP', 'PRIVATE')),
        text {text} NOT NULL,
        nickname TEXT,
        room TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX muca_messages_kind_room_id ON muca_messages (kind, room, id)",
    _RECIPIENTS,
    _READERS,
    "CREATE TABLE muca_users (uid TEXT PRIMARY KEY, nickname TEXT, seen BIGINT)",
    """CREATE TABLE muca_rooms (
        name TEXT PRIMARY KEY,
        owner TEXT,
        topic {text} NOT NULL,
        private INTEGER NOT NULL DEFAULT 0,
        slow INTEGER NOT NULL DEFAULT 0,
        created BIGINT NOT NULL DEFAULT 0)""",
    """CREATE TABLE muca_room_invites (
        room TEXT NOT NULL,
        uid TEXT NOT NULL,
        PRIMARY KEY (room, uid)){key_only}""",
    """CREATE TABLE muca_account_rooms (
        uid TEXT NOT NULL,
        room TEXT NOT NULL,
        since BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (uid, room))""",
]

#: The rooms of version 4 (name, owner, topic, private, slow, created).
VERSION_4_ROOMS = [("dev", "alice", "code", 1, 0, 3)]

#: The indexes of the current schema version, 6 (without those of primary
#: keys): the broadcasts by room, the audit log by time (and PostgreSQL's
#: search index: see ``current_indexes``).
CURRENT_INDEXES = {"muca_messages_kind_room_id", "muca_audit_ts"}


def version_2_readers(messages: list[ChatMessage]) -> list[tuple[str, int]]:
    """Rows of muca_readers as version 2 wrote them."""
    readers = {(m.sender, m.id) for m in messages if m.kind != "ALL"}
    readers.update((uid, m.id) for m in messages for uid in m.recipients)
    return sorted(readers)


def old_tables(
    version: int, messages: list[ChatMessage], encode: Any
) -> tuple[list[str], list[tuple[str, list[tuple[Any, ...]]]]]:
    """The schema of ``version`` (1 to 4) and the rows that version wrote
    for ``messages`` (and, in versions 2 to 4, :data:`VERSION_2_USERS` or
    :data:`VERSION_3_USERS`; in version 4 :data:`VERSION_4_ROOMS`), by
    table."""
    rows, recipients = version_1_rows(messages, encode)
    if version == 4:
        rows = [
            (*row, m.nickname, m.room) for row, m in zip(rows, messages, strict=True)
        ]
    if version == 3:
        rows = [(*row, m.nickname) for row, m in zip(rows, messages, strict=True)]
    tables = [("muca_messages", rows), ("muca_recipients", recipients)]
    if version == 1:
        return VERSION_1_SCHEMA, tables
    tables += [
        ("muca_readers", version_2_readers(messages)),
        ("muca_meta", [("readers_upto", str(messages[-1].id))] if messages else []),
    ]
    if version == 2:
        tables.append(("muca_users", [(uid,) for uid in VERSION_2_USERS]))
        return VERSION_2_SCHEMA, tables
    tables.append(("muca_users", VERSION_3_USERS))
    if version == 3:
        return VERSION_3_SCHEMA, tables
    rooms = [(n, o, encode(t), p, sl, c) for n, o, t, p, sl, c in VERSION_4_ROOMS]
    tables.append(("muca_rooms", rooms))
    return VERSION_4_SCHEMA, tables


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

    def make_old_database(self, version: int, messages: list[ChatMessage]) -> None:
        """Create this test's database as schema ``version`` (1 to 4)
        held ``messages`` (see :func:`old_tables`)."""
        raise NotImplementedError

    async def reads_the_same(self, old: list[ChatMessage]) -> MessageStore:
        """Open the migrated database: it reads ``old`` as it was written,
        to every reader (no nicknames: they were not kept)."""
        store = await self.opened()
        self.assertEqual(store.last_id(), 120)
        for reader in ("alice", "dave", "frank", "mallory"):
            expected = [m.id for m in old if may_read(m, reader, True)]
            self.assertEqual(await self.read_all(store, reader), expected, reader)
        page = await store.latest("bob", True, 500)
        self.assertEqual(page.messages, [m for m in old if may_read(m, "bob", True)])
        return store

    #: The backend's indexes of the current schema.
    current_indexes = CURRENT_INDEXES

    def drop_search_index(self) -> None:
        """Make the database what version 5 made: no search index."""
        raise NotImplementedError

    async def test_a_version_5_database_gets_its_messages_indexed(self) -> None:
        old = [
            message(1, "alice", text="the café opens at noon"),
            message(2, "bob", "PRIVATE", ("alice",), text="meet at the cafe"),
            message(3, "carol", text="東京タワーに行きました", room="dev"),
            message(4, "dave", text="nothing to see"),
        ]
        store = await self.opened()
        await store.append(old)
        await store.close()
        self.drop_search_index()
        self.set_schema_version(5)
        store = await self.opened()
        self.assertEqual(self.schema(), ("7", self.current_indexes))
        found = await store.search("alice", True, parse("CAFE"), rooms=["", "dev"])
        self.assertEqual(found.messages, old[:2])
        found = await store.search("alice", True, parse("タワー"), rooms=["", "dev"])
        self.assertEqual(found.messages, [old[2]])
        # New messages are indexed as before, the old ones once.
        await store.append([message(5, "eve", text="cafe again")])
        found = await store.search(None, False, parse("cafe"))
        self.assertEqual(ids(found), [1, 5])
        await store.close()
        again = await self.opened()
        self.assertEqual(ids(await again.search(None, False, parse("cafe"))), [1, 5])

    def drop_moderation_tables(self) -> None:
        """Make the database what version 6 made: no moderation tables."""
        raise NotImplementedError

    async def test_a_version_6_database_gains_moderation(self) -> None:
        store = await self.opened()
        await store.append([message(1, "alice", text="hello")])
        await store.close()
        self.drop_moderation_tables()
        self.set_schema_version(6)
        store = await self.opened()
        self.assertEqual(self.schema(), ("7", self.current_indexes))
        self.assertEqual(
            (store.moderators_at_open(), store.sanctions_at_open()), ({}, [])
        )
        ban = Sanction("ban", "dev", "bob", 5000, "alice", "spam")
        await store.save_sanction(ban)
        await store.save_sanction(Sanction("mute", "", "carol", None, "alice"))
        await store.drop_sanction("mute", "", "carol")
        await store.save_moderator("dev", "dave", True)
        await store.save_reports(["dave"], '{"CMD": "REPORT"}')
        await store.close()
        again = await self.opened()
        self.assertEqual(again.sanctions_at_open(), [ban])
        self.assertEqual(again.moderators_at_open(), {"dev": {"dave"}})
        self.assertEqual(await again.take_reports("dave"), ['{"CMD": "REPORT"}'])
        self.assertEqual(await again.take_reports("dave"), [])
        self.assertEqual(ids(await again.latest(None, False, 10)), [1])
        await again.close()

    async def test_a_new_database_has_the_version_7_schema(self) -> None:
        store = await self.opened()
        self.assertEqual(store.rooms_at_open(), [])
        self.assertEqual(store.account_rooms_at_open(), {})
        self.assertIsNone(await store.account("alice"))
        await store.close()
        self.assertEqual(self.schema(), ("7", self.current_indexes))

    async def test_a_version_4_database_keeps_its_rooms_and_gains_accounts(
        self,
    ) -> None:
        # Every other broadcast in the room "dev".
        old = [
            ChatMessage(
                m.id,
                m.ts,
                m.sender,
                m.kind,
                m.recipients,
                m.text,
                "Nick",
                "dev" if m.kind == "ALL" and m.id % 2 else "",
            )
            for m in busy_conversation(120)
        ]
        self.make_old_database(4, old)
        store = await self.opened()
        self.assertEqual(store.last_id(), 120)
        page = await store.latest("bob", True, 500, rooms=["", "dev"])
        self.assertEqual(
            page.messages, [m for m in old if may_read(m, "bob", True, ["", "dev"])]
        )
        self.assertEqual(
            store.rooms_at_open(), [StoredRoom("dev", "alice", "code", True, 0, 3)]
        )
        self.assertEqual(
            store.known_at_open(),
            [KnownUser(uid, nickname, seen) for uid, nickname, seen in VERSION_3_USERS],
        )
        # The accounts' tables are there, empty, and take an account.
        self.assertIsNone(await store.account("alice"))
        account = Account(
            "alice", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", created=4
        )
        await store.register(account, None, 4)
        self.assertEqual(await store.account("alice"), account)
        await store.close()
        self.assertEqual(self.schema(), ("7", self.current_indexes))
        again = await self.opened()
        self.assertEqual(await again.account("alice"), account)
        self.assertEqual(self.schema(), ("7", self.current_indexes))

    async def test_a_version_3_database_keeps_its_messages_in_the_default_room(
        self,
    ) -> None:
        old = [
            ChatMessage(m.id, m.ts, m.sender, m.kind, m.recipients, m.text, "Nick")
            for m in busy_conversation(120)
        ]
        self.make_old_database(3, old)
        store = await self.opened()
        self.assertEqual(store.last_id(), 120)
        # Every message kept before rooms is the default room's ("").
        page = await store.latest("bob", True, 500)
        self.assertEqual(page.messages, [m for m in old if may_read(m, "bob", True)])
        self.assertEqual({m.room for m in page.messages}, {""})
        self.assertEqual({m.nickname for m in page.messages}, {"Nick"})
        broadcasts = [m.id for m in old if m.kind == "ALL"]
        self.assertEqual(ids(await store.latest(None, False, 500)), broadcasts)
        self.assertEqual(ids(await store.latest(None, False, 500, rooms=["dev"])), [])
        self.assertEqual(
            store.known_at_open(),
            [KnownUser(uid, nickname, seen) for uid, nickname, seen in VERSION_3_USERS],
        )
        self.assertEqual(store.rooms_at_open(), [])
        # A room's broadcast after the migration is that room's only.
        await store.append([message(121, "alice", text="in dev", room="dev")])
        self.assertEqual(ids(await store.latest(None, False, 5, rooms=["dev"])), [121])
        self.assertEqual(ids(await store.latest(None, False, 1)), [broadcasts[-1]])
        await store.save_room(StoredRoom("dev", "alice", created=5))
        await store.close()
        again = await self.opened()
        self.assertEqual(again.rooms_at_open(), [StoredRoom("dev", "alice", created=5)])
        self.assertEqual(self.schema(), ("7", self.current_indexes))

    async def test_a_version_2_database_keeps_its_messages_and_users(self) -> None:
        old = busy_conversation(120)
        self.make_old_database(2, old)
        store = await self.reads_the_same(old)
        self.assertEqual(
            store.known_at_open(),
            [KnownUser(uid, None, 0) for uid in VERSION_2_USERS],
        )
        new = message(121, "frank", "PRIVATE", ("alice",), nickname="Frank")
        await store.append([new])
        await store.remember_user("carol", "Carol", 5)
        await store.close()
        again = await self.opened()
        self.assertEqual((await again.latest("frank", True, 1)).messages, [new])
        self.assertEqual(
            again.known_at_open(),
            [KnownUser("dave", None, 0), KnownUser("carol", "Carol", 5)],
        )
        # Version 5 at once.
        self.assertEqual(self.schema(), ("7", self.current_indexes))

    async def test_a_version_1_database_is_migrated_and_reads_the_same(self) -> None:
        old = busy_conversation(120)
        self.make_old_database(1, old)
        store = await self.reads_the_same(old)
        # Version 5 at once, without version 1's per-user indexes.
        self.assertEqual(self.schema(), ("7", self.current_indexes))
        new = message(121, "frank", "PRIVATE", ("alice",))
        await store.append([new])
        self.assertEqual((await store.latest("frank", True, 1)).messages, [new])
        await store.close()
        # Migrated once: a second open finds version 5 and the same messages.
        again = await self.opened()
        self.assertEqual(ids(await again.latest("alice", True, 1)), [121])
        self.assertEqual(self.schema(), ("7", self.current_indexes))

    async def test_an_empty_version_1_database_shows_its_first_private_message(
        self,
    ) -> None:
        # A server that never stored a message before the upgrade: the
        # first message after it, a private one, reaches its reader.
        self.make_old_database(1, [])
        store = await self.opened()
        self.assertEqual(store.last_id(), 0)
        first = message(1, "alice", "PRIVATE", ("bob",))
        await store.append([first, message(2)])
        await store.close()
        again = await self.opened()
        self.assertEqual((await again.latest("bob", True, 5)).messages[0], first)
        self.assertEqual(ids(await again.latest("eve", True, 5)), [2])

    async def test_a_schema_version_that_is_no_version_is_refused(self) -> None:
        store = await self.opened()
        await store.close()
        for version, why in (
            ("x", "not a MUCA database (schema version 'x')"),
            ("0", "not a MUCA database (schema version 0)"),
        ):
            self.set_schema_version(version)  # type: ignore[arg-type]
            with self.assertRaises(StoreError) as caught:
                await self.new_store().open()
            self.assertIn(why, str(caught.exception))

    async def test_a_newer_schema_is_refused(self) -> None:
        store = await self.opened()
        await store.close()
        self.set_schema_version(99)
        with self.assertRaises(StoreError) as caught:
            await self.new_store().open()
        self.assertIn("schema version 99 is newer", str(caught.exception))


class SQLiteMigrationTests(SQLiteBackend, MigrationBehaviour, TestCase):
    """Schema versions of an SQLite file."""

    def drop_search_index(self) -> None:
        with sqlite3.connect(self.path) as db:
            for trigger in ("insert", "delete", "update"):
                db.execute(f"DROP TRIGGER muca_search_{trigger}")
            db.execute("DROP TABLE muca_search_words")
            db.execute("DROP TABLE muca_search_cjk")
        db.close()

    def drop_moderation_tables(self) -> None:
        with sqlite3.connect(self.path) as db:
            for table in ("muca_moderators", "muca_sanctions", "muca_reports"):
                db.execute(f"DROP TABLE {table}")
        db.close()

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

    def make_old_database(self, version: int, messages: list[ChatMessage]) -> None:
        schema, tables = old_tables(version, messages, lambda text: text)
        with sqlite3.connect(self.path) as db:
            for statement in schema:
                db.execute(
                    statement.format(
                        id="INTEGER", text="TEXT", key_only=" WITHOUT ROWID"
                    )
                )
            for table, rows in tables:
                if not rows:
                    continue
                marks = ", ".join("?" * len(rows[0]))
                db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        db.close()


class PostgresMigrationTests(PostgresBackend, MigrationBehaviour, TestCase):
    """Schema versions of a real PostgreSQL database."""

    current_indexes = CURRENT_INDEXES | {"muca_search_doc"}

    def drop_search_index(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as db:
            db.execute("DROP TABLE muca_search")

    def drop_moderation_tables(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as db:
            db.execute("DROP TABLE muca_moderators, muca_sanctions, muca_reports")

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

    def make_old_database(self, version: int, messages: list[ChatMessage]) -> None:
        schema, tables = old_tables(version, messages, str.encode)
        with psycopg.connect(self.conninfo) as db:
            for statement in schema:
                db.execute(statement.format(id="BIGINT", text="BYTEA", key_only=""))
            with db.cursor() as cursor:
                for table, rows in tables:
                    if not rows:
                        continue
                    marks = ", ".join(["%s"] * len(rows[0]))
                    cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
