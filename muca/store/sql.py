"""The store's SQL and row logic, shared by SQLite and PostgreSQL.

Every function here takes a DB-API cursor (a ``sqlite3`` cursor or an
``adbapi`` transaction) and runs on a database thread, never on the reactor.
The caller owns the transaction around it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from muca.protocol.messages import ALL, GROUP, PRIVATE
from muca.store import search_index
from muca.store.base import (
    DEFAULT_ROOM_KEY,
    SCHEMA_VERSION,
    ChatMessage,
    KnownUser,
    Page,
    Sanction,
    StoredRoom,
    StoreError,
)
from muca.store.search import Query

#: Larger than any id a caller can give (ids are 64-bit in PostgreSQL).
NO_UPPER_BOUND = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the backends' SQL: placeholders and two types."""

    placeholder: str
    id_type: str
    text_type: str
    encode_text: Callable[[str], Any]
    decode_text: Callable[[Any], str]
    #: True: the readers index is written by ``index_readers`` in chunks,
    #: after the messages (SQLite); False: with each batch (PostgreSQL).
    readers_later: bool
    #: Appended to CREATE TABLE for a table that is only its primary key.
    key_only_table: str
    #: The bytes the history's tables take, measured cheaply (see
    #: ``prune_to_size``).
    used_bytes: Callable[[Any], int]
    #: True: ``used_bytes`` falls as soon as rows are deleted (SQLite's pages
    #: in use); False: deleted rows' space stays counted (PostgreSQL, until
    #: a ``VACUUM FULL``), and is reused by the rows inserted after.
    size_shrinks: bool
    #: A primary key the database numbers itself (the audit log's rows).
    serial_key: str
    #: How the search index is kept: ``search_index.FTS5`` (SQLite's
    #: full-text tables, kept by triggers) or ``search_index.TSVECTOR``
    #: (a tsvector per message, written with its batch).
    full_text: str

    def sql(self, text: str) -> str:
        """``text`` written with ``?`` placeholders, in this dialect's style."""
        return text.replace("?", self.placeholder)


def _tables(dialect: Dialect) -> list[str]:
    # Who may read a group or private message (its sender and recipients)
    # is the readers index, one row per (uid, message): a page of the
    # messages a uid sent or received is a range scan of it.  Its rows land
    # on one page per user, so writing them with every batch dirties a page
    # per sender and recipient per commit (about 10 µs a message in SQLite,
    # 3 times the message's own rows); SQLite writes them in chunks instead
    # (``index_readers``, see ``muca.store.sqlite``) and reads the messages
    # above the chunk mark from the messages themselves.
    # ``position`` keeps the recipients' order as the sender gave it.
    return [
        f"""CREATE TABLE IF NOT EXISTS muca_messages (
            id {dialect.id_type} PRIMARY KEY,
            ts BIGINT NOT NULL,
            sender TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('ALL', 'GROUP', 'PRIVATE')),
            text {dialect.text_type} NOT NULL,
            nickname TEXT,
            room TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE IF NOT EXISTS muca_recipients (
            message_id BIGINT NOT NULL REFERENCES muca_messages (id),
            position INTEGER NOT NULL,
            uid TEXT NOT NULL,
            PRIMARY KEY (message_id, position))""",
        f"""CREATE TABLE IF NOT EXISTS muca_readers (
            uid TEXT NOT NULL,
            message_id BIGINT NOT NULL,
            PRIMARY KEY (uid, message_id)){dialect.key_only_table}""",
        # The nickname a known user last joined with and when it was last
        # seen (joined or left, ms since the epoch).
        """CREATE TABLE IF NOT EXISTS muca_users (
            uid TEXT PRIMARY KEY, nickname TEXT, seen BIGINT)""",
        # The rooms made on the server (the default room is the server's
        # and not kept here), their invitations, and the rooms each account
        # is in (--auth): its next JOIN enters them again.
        f"""CREATE TABLE IF NOT EXISTS muca_rooms (
            name TEXT PRIMARY KEY,
            owner TEXT,
            topic {dialect.text_type} NOT NULL,
            private INTEGER NOT NULL DEFAULT 0,
            slow INTEGER NOT NULL DEFAULT 0,
            created BIGINT NOT NULL DEFAULT 0)""",
        f"""CREATE TABLE IF NOT EXISTS muca_room_invites (
            room TEXT NOT NULL,
            uid TEXT NOT NULL,
            PRIMARY KEY (room, uid)){dialect.key_only_table}""",
        """CREATE TABLE IF NOT EXISTS muca_account_rooms (
            uid TEXT NOT NULL,
            room TEXT NOT NULL,
            since BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (uid, room))""",
        # Accounts (--auth db): the password's Argon2id hash in its encoded
        # form (the parameters inside it, so that they can be raised later),
        # never the password; the server role; disabled or not.
        """CREATE TABLE IF NOT EXISTS muca_accounts (
            uid TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
            disabled INTEGER NOT NULL DEFAULT 0,
            created BIGINT NOT NULL)""",
        # Invitations to register (--register invite): uses left, expiry
        # (ms since the epoch, NULL: never), revoked, who made it and when.
        """CREATE TABLE IF NOT EXISTS muca_invitations (
            code TEXT PRIMARY KEY,
            uses_left INTEGER NOT NULL,
            expires BIGINT,
            revoked INTEGER NOT NULL DEFAULT 0,
            created_by TEXT,
            created BIGINT NOT NULL)""",
        # What was done to accounts and invitations, by whom (muca-admin's
        # user name, or the account itself), when.
        f"""CREATE TABLE IF NOT EXISTS muca_audit (
            id {dialect.serial_key},
            ts BIGINT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT,
            detail TEXT)""",
        # Moderation (version 7): each room's moderators (named by its
        # owner or an admin), and the bans and mutes of a room or (room '')
        # of the whole server, until a time (ms since the epoch; NULL: for
        # ever), by whom and why.
        f"""CREATE TABLE IF NOT EXISTS muca_moderators (
            room TEXT NOT NULL,
            uid TEXT NOT NULL,
            PRIMARY KEY (room, uid)){dialect.key_only_table}""",
        f"""CREATE TABLE IF NOT EXISTS muca_sanctions (
            kind TEXT NOT NULL CHECK (kind IN ('ban', 'mute')),
            room TEXT NOT NULL,
            uid TEXT NOT NULL,
            until BIGINT,
            by_uid TEXT NOT NULL,
            reason {dialect.text_type} NOT NULL,
            PRIMARY KEY (kind, room, uid))""",
        # Reports waiting for a moderator or admin (``uid``) that was not
        # joined with the moderation capability when they were made: sent
        # at its next JOIN, then forgotten.
        f"""CREATE TABLE IF NOT EXISTS muca_reports (
            id {dialect.serial_key},
            uid TEXT NOT NULL,
            report {dialect.text_type} NOT NULL)""",
    ]


#: The indexes, made after the columns they need (see ``create_or_check``).
#: A page of a room's broadcasts is a range scan of (kind, room, id).
_INDEXES = [
    """CREATE INDEX IF NOT EXISTS muca_messages_kind_room_id
        ON muca_messages (kind, room, id)""",
    "CREATE INDEX IF NOT EXISTS muca_audit_ts ON muca_audit (ts)",
]


#: What schema version 3 added to the tables of versions 1 and 2.
_VERSION_3_COLUMNS = (
    "ALTER TABLE muca_messages ADD COLUMN nickname TEXT",
    "ALTER TABLE muca_users ADD COLUMN nickname TEXT",
    "ALTER TABLE muca_users ADD COLUMN seen BIGINT",
)


#: What schema version 4 added: each message's room, the default room's
#: (``''``) for every message kept before.
_VERSION_4_COLUMNS = (
    "ALTER TABLE muca_messages ADD COLUMN room TEXT NOT NULL DEFAULT ''",
)

#: Version 1's per-user indexes, which the readers index replaced.
_VERSION_1_INDEXES = ("muca_messages_sender_id", "muca_recipients_uid_id")

#: Versions 1 to 3's index of broadcasts, which (kind, room, id) replaced.
_VERSION_3_INDEXES = ("muca_messages_kind_id",)


META_TABLE = """CREATE TABLE IF NOT EXISTS muca_meta (
    key TEXT PRIMARY KEY, value TEXT NOT NULL)"""


def read_meta(cursor: Any, dialect: Dialect, key: str) -> str | None:
    """The value kept under ``key`` in muca_meta, or None."""
    cursor.execute(dialect.sql("SELECT value FROM muca_meta WHERE key = ?"), (key,))
    rows = cursor.fetchall()
    return rows[0][0] if rows else None


def write_meta(cursor: Any, dialect: Dialect, key: str, value: str) -> None:
    """Keep ``value`` under ``key`` in muca_meta."""
    cursor.execute(dialect.sql("DELETE FROM muca_meta WHERE key = ?"), (key,))
    cursor.execute(
        dialect.sql("INSERT INTO muca_meta (key, value) VALUES (?, ?)"), (key, value)
    )


def create_or_check(cursor: Any, dialect: Dialect) -> int:
    """Create the schema, or check its version and migrate an older one;
    return the last id ever stored.

    The version is checked before any other DDL so that a newer release's
    schema is never touched by this one.
    """
    cursor.execute(META_TABLE)
    version = read_meta(cursor, dialect, "schema_version")
    number = SCHEMA_VERSION
    if version is not None:
        try:
            number = int(version)
        except ValueError:
            raise StoreError(
                f"not a MUCA database (schema version {version!r})"
            ) from None
        if number > SCHEMA_VERSION:
            raise StoreError(
                f"schema version {number} is newer than this release "
                f"(which knows version {SCHEMA_VERSION}); upgrade MUCA"
            )
        if number < 1:
            raise StoreError(f"not a MUCA database (schema version {number})")
    for statement in _tables(dialect):
        cursor.execute(statement)
    if number == 1:
        # Version 2: the readers index replaces two per-user indexes.
        for name in _VERSION_1_INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
    if version is not None and number < 3:
        # Version 3: senders' nicknames, known users' last nickname and time.
        for statement in _VERSION_3_COLUMNS:
            cursor.execute(statement)
    if version is not None and number < 4:
        # Version 4: rooms. What was kept before is the default room's.
        for statement in _VERSION_4_COLUMNS:
            cursor.execute(statement)
        for name in _VERSION_3_INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
    for statement in _INDEXES:
        cursor.execute(statement)
    search_index.create(cursor, dialect)
    if version is not None and number < 6:
        # Version 6: the search index, built for the messages kept before.
        search_index.build(cursor, dialect)
    if number < SCHEMA_VERSION or version is None:
        write_meta(cursor, dialect, "schema_version", str(SCHEMA_VERSION))
    if number == 1:
        # Version 1 had no readers index.
        index_readers(cursor, dialect)
    return read_last_id(cursor, dialect)


def read_last_id(cursor: Any, dialect: Dialect) -> int:
    """The highest id stored now or ever pruned away (0 if none)."""
    cursor.execute("SELECT MAX(id) FROM muca_messages")
    highest = cursor.fetchall()[0][0] or 0
    # Pruning may delete the newest messages too; the high-water mark keeps
    # ids from being reused after a restart.
    high_water = int(read_meta(cursor, dialect, "high_water") or 0)
    return max(int(highest), high_water)


def check_batch(messages: Sequence[ChatMessage], last_id: int) -> None:
    """Refuse a batch the schema would store wrongly or a caller bug made."""
    previous = last_id
    for message in messages:
        if message.id <= previous:
            raise StoreError(
                f"message id {message.id} is not above the previous id {previous}"
            )
        if message.kind not in (ALL, GROUP, PRIVATE):
            raise StoreError(f"unknown message kind {message.kind!r}")
        if message.kind == ALL and message.recipients:
            raise StoreError(f"broadcast {message.id} has recipients")
        previous = message.id


#: Rows in one INSERT statement at most: a batch goes in as few statements
#: as this allows (see ``insert``).
ROWS_PER_INSERT = 128


def insert(cursor: Any, dialect: Dialect, messages: Sequence[ChatMessage]) -> None:
    """Insert ``messages`` and their recipients (inside the caller's
    transaction), and their readers unless ``dialect.readers_later``."""
    _insert_rows(
        cursor,
        dialect,
        "muca_messages (id, ts, sender, kind, text, nickname, room)",
        [
            (
                m.id,
                m.ts,
                m.sender,
                m.kind,
                dialect.encode_text(m.text),
                m.nickname,
                m.room,
            )
            for m in messages
        ],
    )
    recipients = [
        (m.id, position, uid)
        for m in messages
        for position, uid in enumerate(m.recipients)
    ]
    _insert_rows(
        cursor, dialect, "muca_recipients (message_id, position, uid)", recipients
    )
    if not dialect.readers_later:
        readers = {(m.sender, m.id) for m in messages if m.kind != ALL}
        readers.update((uid, message_id) for message_id, _, uid in recipients)
        _insert_rows(cursor, dialect, "muca_readers (uid, message_id)", sorted(readers))
    search_index.insert(cursor, dialect, messages)


def insert_json(cursor: Any, lines: str) -> None:
    """Insert the messages of ``lines``, a JSON array of spool lines (each
    an array of messages ``[id, ts, sender, kind, [recipients], text,
    nickname, room]``, the nickname and the room absent in older lines),
    with their recipients; SQLite only (its JSON functions; its readers
    index is written later), inside the caller's transaction.

    All the per-message work is SQLite's, in C, outside Python's lock: the
    database thread holds the lock only to bind one string.  SQLite's JSON
    functions cut a string at U+0000, so lines with one go through
    ``insert`` instead (see ``SQLiteStore``).
    """
    cursor.execute(
        "INSERT INTO muca_messages (id, ts, sender, kind, text, nickname, room)"
        " SELECT m.value ->> 0, m.value ->> 1, m.value ->> 2, m.value ->> 3,"
        " m.value ->> 5, m.value ->> 6, COALESCE(m.value ->> 7, '')"
        " FROM json_each(?) AS line, json_each(line.value) AS m",
        (lines,),
    )
    cursor.execute(
        "INSERT INTO muca_recipients (message_id, position, uid)"
        " SELECT m.value ->> 0, r.key, r.value FROM json_each(?) AS line,"
        " json_each(line.value) AS m, json_each(m.value -> 4) AS r",
        (lines,),
    )


def _insert_rows(
    cursor: Any, dialect: Dialect, into: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    # Many rows per statement: fewer round trips to PostgreSQL, and fewer
    # hand-overs of Python's lock in SQLite (which releases it for every
    # statement; this path is SQLite's only for texts holding U+0000).
    if not rows:
        return
    width = len(rows[0])
    one_row = "(" + ", ".join([dialect.placeholder] * width) + ")"
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        cursor.execute(
            f"INSERT INTO {into} VALUES " + ", ".join([one_row] * len(chunk)),
            [value for row in chunk for value in row],
        )


def readers_upto(cursor: Any, dialect: Dialect) -> int:
    """The id up to which the readers index is written (``readers_later``)."""
    return int(read_meta(cursor, dialect, "readers_upto") or 0)


def index_readers(cursor: Any, dialect: Dialect) -> int:
    """Write the readers of every message above ``readers_upto`` into the
    readers index (inside the caller's transaction); return the new mark."""
    upto = readers_upto(cursor, dialect)
    cursor.execute("SELECT MAX(id) FROM muca_messages")
    newest = int(cursor.fetchall()[0][0] or 0)
    if newest <= upto:
        return upto
    cursor.execute(
        dialect.sql(
            "INSERT INTO muca_readers (uid, message_id)"
            " SELECT sender, id FROM muca_messages"
            " WHERE kind <> 'ALL' AND id > ? AND id <= ?"
            " UNION SELECT uid, message_id FROM muca_recipients"
            " WHERE message_id > ? AND message_id <= ?"
            " ORDER BY 1, 2"
        ),
        (upto, newest, upto, newest),
    )
    write_meta(cursor, dialect, "readers_upto", str(newest))
    return newest


#: Rooms a page reads one branch each at most; more go in one branch (a
#: user in that many rooms at once: slower, but SQLite's limit of 500
#: terms in a compound SELECT stays far).
MAX_ROOM_BRANCHES = 64


def _page_sql(rooms: int, private: bool, tail: bool) -> str:
    # Each branch takes at most limit + 1 ids through its own index, newest
    # first, so a page costs O(limit) whatever the table's size; UNION then
    # merges them and drops the duplicates (a reader's own broadcasts).
    # One branch per room: (kind, room, id) read backwards from the upper
    # bound (see MAX_ROOM_BRANCHES).
    if rooms > MAX_ROOM_BRANCHES:
        marks = ", ".join(["?"] * rooms)
        branches = [
            "SELECT id FROM (SELECT id FROM muca_messages"
            f" WHERE kind = 'ALL' AND room IN ({marks}) AND id > ? AND id < ?"
            " ORDER BY id DESC LIMIT ?) AS b"
        ]
    else:
        branches = [
            "SELECT id FROM (SELECT id FROM muca_messages"
            " WHERE kind = 'ALL' AND room = ? AND id > ? AND id < ?"
            f" ORDER BY id DESC LIMIT ?) AS b{n}"
            for n in range(rooms)
        ]
    if private:
        branches.append(
            "SELECT id FROM (SELECT message_id AS id FROM muca_readers"
            " WHERE uid = ? AND message_id > ? AND message_id < ?"
            " ORDER BY message_id DESC LIMIT ?) AS r"
        )
    if private and tail:
        # Above the readers index's mark (at most a chunk of messages): the
        # messages themselves, newest first.
        branches.append(
            "SELECT id FROM (SELECT id FROM muca_messages AS t"
            " WHERE id > ? AND id < ? AND kind <> 'ALL' AND (sender = ?"
            " OR EXISTS (SELECT 1 FROM muca_recipients AS tr"
            " WHERE tr.message_id = t.id AND tr.uid = ?))"
            " ORDER BY id DESC LIMIT ?) AS u"
        )
    return (
        "WITH page (id) AS (SELECT id FROM ("
        + " UNION ".join(branches)
        + ") AS visible ORDER BY id DESC LIMIT ?)"
        " SELECT m.id, m.ts, m.sender, m.kind, m.text, m.nickname, m.room, r.uid"
        " FROM page JOIN muca_messages AS m ON m.id = page.id"
        " LEFT JOIN muca_recipients AS r ON r.message_id = m.id"
        " ORDER BY m.id, r.position"
    )


def read_page(
    cursor: Any,
    dialect: Dialect,
    reader: str | None,
    private: bool,
    lower: int,
    upper: int,
    limit: int,
    rooms: Sequence[str] = (DEFAULT_ROOM_KEY,),
) -> Page:
    """The newest ``limit`` messages visible to ``reader`` with
    ``lower < id < upper``, oldest first; ``more`` if older ones exist there:
    the broadcasts of ``rooms`` (room keys), and with ``private`` the
    reader's own private and group messages."""
    if limit < 0:
        raise StoreError(f"a page limit cannot be negative ({limit})")
    # Without authentication a uid proves nothing: only broadcasts.
    private = private and reader is not None
    rooms = list(dict.fromkeys(rooms))
    if not rooms and not private:
        return Page([], False)
    # One id past the limit tells whether older visible messages remain.
    fetch = limit + 1
    params: list[Any] = []
    if len(rooms) > MAX_ROOM_BRANCHES:
        params += [*rooms, lower, upper, fetch]
    else:
        for room in rooms:
            params += [room, lower, upper, fetch]
    if private:
        params += [reader, lower, upper, fetch]
    tail = private and dialect.readers_later
    if tail:
        # Read before the page: the mark only grows, and what is above an
        # older mark is in the tail branch too.
        unindexed_above = max(lower, readers_upto(cursor, dialect))
        params += [unindexed_above, upper, reader, reader, fetch]
    params.append(fetch)
    cursor.execute(dialect.sql(_page_sql(len(rooms), private, tail)), params)
    messages = rows_to_messages(cursor.fetchall(), dialect)
    more = len(messages) > limit
    if more:
        # The extra one is the oldest: it only served to set ``more``.
        messages = messages[len(messages) - limit :]
    return Page(messages, more)


def search(
    cursor: Any,
    dialect: Dialect,
    query: Query,
    reader: str | None,
    private: bool,
    rooms: Sequence[str],
    sender: str | None,
    before: int,
    limit: int,
) -> Page:
    """The newest ``limit`` messages matching ``query`` that ``reader``
    may read (as a page does), from ``sender`` if given, with an id below
    ``before``; oldest first, ``more`` when older matching ones exist."""
    # One past the limit tells whether older matches remain.
    wanted = limit + 1
    if dialect.full_text == search_index.TSVECTOR:
        messages = _search_postgres(
            cursor, dialect, query, reader, private, rooms, sender, before, wanted
        )
    else:
        found = search_index.search_sql(
            dialect, query, reader, private, rooms, sender, before, wanted
        )
        if found is None:
            return Page([], False)
        cursor.execute(*found)
        messages = rows_to_messages(cursor.fetchall(), dialect)
    more = len(messages) > limit
    if more:
        messages = messages[len(messages) - limit :]
    return Page(messages, more)


#: Newest messages a PostgreSQL search walks in id order before it asks the
#: GIN index for the rest (see ``_search_postgres``).
SEARCH_WINDOW = 20_000


def _search_postgres(
    cursor: Any,
    dialect: Dialect,
    query: Query,
    reader: str | None,
    private: bool,
    rooms: Sequence[str],
    sender: str | None,
    before: int,
    wanted: int,
) -> list[ChatMessage]:
    """A search in two steps, since no one plan is fast for every word.
    Walking the messages newest first finds a common word's page at once
    and a rare one's only after the whole table; the GIN index finds a
    rare word's few matches at once and a common one's only by reading
    them all. So the newest ``SEARCH_WINDOW`` messages below ``before``
    are walked first; what they lack comes from the GIN index's matches
    below them (few, or the walk would have filled the page)."""
    cursor.execute(
        dialect.sql("SELECT COALESCE(MAX(id), 0) FROM muca_messages WHERE id < ?"),
        (before,),
    )
    floor = max(0, int(cursor.fetchall()[0][0]) - SEARCH_WINDOW)
    found = search_index.search_sql(
        dialect, query, reader, private, rooms, sender, before, wanted, floor
    )
    if found is None:
        return []
    cursor.execute(*found)
    newest = rows_to_messages(cursor.fetchall(), dialect)
    if len(newest) >= wanted or floor == 0:
        return newest
    older = search_index.search_sql(
        dialect,
        query,
        reader,
        private,
        rooms,
        sender,
        floor + 1,
        wanted - len(newest),
        materialized=True,
    )
    assert older is not None
    cursor.execute(*older)
    return rows_to_messages(cursor.fetchall(), dialect) + newest


def rows_to_messages(
    rows: Sequence[Sequence[Any]], dialect: Dialect
) -> list[ChatMessage]:
    """Fold rows of (id, ts, sender, kind, text, nickname, room, recipient
    uid or NULL), ordered by id then recipient position, into messages."""
    messages: list[ChatMessage] = []
    current: list[Any] | None = None
    recipients: list[str] = []

    def finish() -> None:
        if current is not None:
            id_, ts, sender, kind, text, nickname, room = current
            messages.append(
                ChatMessage(
                    int(id_),
                    int(ts),
                    sender,
                    kind,
                    tuple(recipients),
                    dialect.decode_text(text),
                    nickname,
                    room or DEFAULT_ROOM_KEY,
                )
            )

    for id_, ts, sender, kind, text, nickname, room, uid in rows:
        if current is None or current[0] != id_:
            finish()
            current = [id_, ts, sender, kind, text, nickname, room]
            recipients = []
        if uid is not None:
            recipients.append(uid)
    finish()
    return messages


def remember_user(
    cursor: Any, dialect: Dialect, uid: str, nickname: str, seen_ms: int
) -> None:
    """Record ``uid`` as known, seen at ``seen_ms`` with ``nickname``."""
    cursor.execute(
        dialect.sql(
            "INSERT INTO muca_users (uid, nickname, seen) VALUES (?, ?, ?)"
            " ON CONFLICT (uid) DO UPDATE"
            " SET nickname = excluded.nickname, seen = excluded.seen"
        ),
        (uid, nickname, seen_ms),
    )


def known_users(cursor: Any) -> list[KnownUser]:
    """Every remembered user, the least recently seen first."""
    cursor.execute(
        "SELECT uid, nickname, COALESCE(seen, 0) FROM muca_users"
        " ORDER BY COALESCE(seen, 0), uid"
    )
    rows = cursor.fetchall()
    return [KnownUser(uid, nickname, int(seen)) for uid, nickname, seen in rows]


def read_rooms(cursor: Any, dialect: Dialect) -> list[StoredRoom]:
    """Every kept room with its invitations, the oldest first."""
    cursor.execute("SELECT room, uid FROM muca_room_invites ORDER BY room, uid")
    invited: dict[str, list[str]] = {}
    for room, uid in cursor.fetchall():
        invited.setdefault(room, []).append(uid)
    cursor.execute(
        "SELECT name, owner, topic, private, slow, created FROM muca_rooms"
        " ORDER BY created, name"
    )
    return [
        StoredRoom(
            name,
            owner,
            dialect.decode_text(topic),
            bool(private),
            int(slow),
            int(created),
            tuple(invited.get(name, ())),
        )
        for name, owner, topic, private, slow, created in cursor.fetchall()
    ]


def read_account_rooms(cursor: Any) -> dict[str, list[str]]:
    """Each account's rooms, in the order it entered them."""
    cursor.execute("SELECT uid, room FROM muca_account_rooms ORDER BY uid, since, room")
    rooms: dict[str, list[str]] = {}
    for uid, room in cursor.fetchall():
        rooms.setdefault(uid, []).append(room)
    return rooms


def save_room(cursor: Any, dialect: Dialect, room: StoredRoom) -> None:
    """Keep a room, or its settings when it is kept already (its owner and
    when it was made stay)."""
    cursor.execute(
        dialect.sql(
            "INSERT INTO muca_rooms (name, owner, topic, private, slow, created)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE"
            " SET topic = excluded.topic, private = excluded.private,"
            " slow = excluded.slow"
        ),
        (
            room.name,
            room.owner,
            dialect.encode_text(room.topic),
            int(room.private),
            room.slow,
            room.created,
        ),
    )


def save_invite(cursor: Any, dialect: Dialect, room: str, uid: str) -> None:
    """Keep an invitation (once)."""
    cursor.execute(
        dialect.sql(
            "INSERT INTO muca_room_invites (room, uid) VALUES (?, ?)"
            " ON CONFLICT (room, uid) DO NOTHING"
        ),
        (room, uid),
    )


def save_account_room(
    cursor: Any, dialect: Dialect, uid: str, room: str, member: bool, since: int
) -> None:
    """Keep that account ``uid`` is in ``room`` (since ``since``), or forget it."""
    if member:
        cursor.execute(
            dialect.sql(
                "INSERT INTO muca_account_rooms (uid, room, since) VALUES (?, ?, ?)"
                " ON CONFLICT (uid, room) DO NOTHING"
            ),
            (uid, room, since),
        )
    else:
        cursor.execute(
            dialect.sql("DELETE FROM muca_account_rooms WHERE uid = ? AND room = ?"),
            (uid, room),
        )


def read_message(cursor: Any, dialect: Dialect, message_id: int) -> ChatMessage | None:
    """The message kept under ``message_id``, if any."""
    cursor.execute(
        dialect.sql(
            "SELECT id, ts, sender, kind, text, nickname, room FROM muca_messages"
            " WHERE id = ?"
        ),
        (message_id,),
    )
    rows = cursor.fetchall()
    if not rows:
        return None
    (mid, ts, sender, kind, text, nickname, room) = rows[0]
    cursor.execute(
        dialect.sql(
            "SELECT uid FROM muca_recipients WHERE message_id = ? ORDER BY position"
        ),
        (message_id,),
    )
    recipients = tuple(uid for (uid,) in cursor.fetchall())
    return ChatMessage(
        int(mid),
        int(ts),
        sender,
        kind,
        recipients,
        dialect.decode_text(text),
        nickname,
        room,
    )


def delete_text(cursor: Any, dialect: Dialect, message_id: int) -> None:
    """Empty a message's text (its id stays); the search index follows it
    (its triggers)."""
    cursor.execute(
        dialect.sql("UPDATE muca_messages SET text = ? WHERE id = ?"),
        (dialect.encode_text(""), message_id),
    )


#: Most reports kept for one moderator until its next JOIN (the newest
#: past this are not kept: what reporters can make the database hold is
#: bounded).
MAX_PENDING_REPORTS = 1000


def admins(cursor: Any) -> list[str]:
    """The user ids of the enabled admin accounts."""
    cursor.execute(
        "SELECT uid FROM muca_accounts WHERE role = 'admin' AND disabled = 0"
    )
    return [uid for (uid,) in cursor.fetchall()]


def save_reports(
    cursor: Any, dialect: Dialect, uids: Sequence[str], report: str
) -> None:
    """Keep ``report`` (its JSON) for each of ``uids`` that has fewer than
    :data:`MAX_PENDING_REPORTS` waiting."""
    for uid in uids:
        cursor.execute(
            dialect.sql("SELECT COUNT(*) FROM muca_reports WHERE uid = ?"), (uid,)
        )
        if int(cursor.fetchall()[0][0]) < MAX_PENDING_REPORTS:
            cursor.execute(
                dialect.sql("INSERT INTO muca_reports (uid, report) VALUES (?, ?)"),
                (uid, dialect.encode_text(report)),
            )


def take_reports(cursor: Any, dialect: Dialect, uid: str) -> list[str]:
    """The reports waiting for ``uid``, oldest first, forgotten as read."""
    cursor.execute(
        dialect.sql("SELECT id, report FROM muca_reports WHERE uid = ? ORDER BY id"),
        (uid,),
    )
    rows = cursor.fetchall()
    if rows:
        cursor.execute(dialect.sql("DELETE FROM muca_reports WHERE uid = ?"), (uid,))
    return [dialect.decode_text(report) for _, report in rows]


def read_moderators(cursor: Any) -> dict[str, set[str]]:
    """Each room's moderators."""
    cursor.execute("SELECT room, uid FROM muca_moderators")
    moderators: dict[str, set[str]] = {}
    for room, uid in cursor.fetchall():
        moderators.setdefault(room, set()).add(uid)
    return moderators


def save_moderator(
    cursor: Any, dialect: Dialect, room: str, uid: str, named: bool
) -> None:
    """Keep that ``uid`` moderates ``room``, or forget it."""
    if named:
        cursor.execute(
            dialect.sql(
                "INSERT INTO muca_moderators (room, uid) VALUES (?, ?)"
                " ON CONFLICT (room, uid) DO NOTHING"
            ),
            (room, uid),
        )
    else:
        cursor.execute(
            dialect.sql("DELETE FROM muca_moderators WHERE room = ? AND uid = ?"),
            (room, uid),
        )


def read_sanctions(cursor: Any, dialect: Dialect) -> list[Sanction]:
    """Every ban and mute kept."""
    cursor.execute(
        "SELECT kind, room, uid, until, by_uid, reason FROM muca_sanctions"
        " ORDER BY kind, room, uid"
    )
    return [
        Sanction(
            kind,
            room,
            uid,
            None if until is None else int(until),
            by,
            dialect.decode_text(reason),
        )
        for kind, room, uid, until, by, reason in cursor.fetchall()
    ]


def save_sanction(cursor: Any, dialect: Dialect, sanction: Sanction) -> None:
    """Keep a ban or mute, replacing the one of its kind, room and uid."""
    cursor.execute(
        dialect.sql(
            "INSERT INTO muca_sanctions (kind, room, uid, until, by_uid, reason)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, room, uid) DO UPDATE"
            " SET until = excluded.until, by_uid = excluded.by_uid,"
            " reason = excluded.reason"
        ),
        (
            sanction.kind,
            sanction.room,
            sanction.uid,
            sanction.until,
            sanction.by,
            dialect.encode_text(sanction.reason),
        ),
    )


def drop_sanction(
    cursor: Any, dialect: Dialect, kind: str, room: str, uid: str
) -> None:
    """Forget a ban or mute."""
    cursor.execute(
        dialect.sql(
            "DELETE FROM muca_sanctions WHERE kind = ? AND room = ? AND uid = ?"
        ),
        (kind, room, uid),
    )


def delete_range(cursor: Any, dialect: Dialect, first: int, last: int) -> int:
    """Delete the messages with ``first <= id <= last``, recipients and
    readers included; return how many messages went."""
    for table in ("muca_recipients", "muca_readers"):
        cursor.execute(
            dialect.sql(f"DELETE FROM {table} WHERE message_id BETWEEN ? AND ?"),
            (first, last),
        )
    cursor.execute(
        dialect.sql("DELETE FROM muca_messages WHERE id BETWEEN ? AND ?"),
        (first, last),
    )
    return max(cursor.rowcount, 0)
