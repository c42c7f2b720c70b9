"""The search index (schema version 6) and the queries that read it, for
both backends; on a database thread, inside the caller's transaction.

SQLite: two FTS5 tables over ``muca_messages`` (external content: the text
is not kept twice): ``muca_search_words`` (the ``unicode61`` tokenizer,
accents removed) for every message, and ``muca_search_cjk`` (the
``trigram`` tokenizer: any part of three characters) for the messages with
Chinese or Japanese in them. Triggers on ``muca_messages`` keep both in the
statement that inserts or deletes a message, so a message is never stored
without its index, nor its index kept without it, whatever path wrote it
(a batch from the spool, a spool recovered at open, retention).

PostgreSQL: ``muca_search``, one ``tsvector`` per message (made by
``muca.store.search.document``: folded words, and three-character pieces of
Chinese and Japanese) with a GIN index, written in the transaction of the
message's batch, deleted with it (``ON DELETE CASCADE``) and when its
text is replaced (a trigger: a deleted text's words are not found).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from twisted.logger import Logger

from muca.store.base import ChatMessage
from muca.store.search import CJK_GLOB, Query, document, fts5_match, tsquery


class Dialect(Protocol):
    """What the index needs of a backend's ``muca.store.sql.Dialect``
    (which imports this module)."""

    placeholder: str
    full_text: str

    def decode_text(self, value: Any) -> str:
        """A stored text as ``str``."""
        ...

    def sql(self, text: str) -> str:
        """``text`` with this dialect's placeholders."""
        ...


log = Logger()

#: ``Dialect.full_text`` of each backend.
FTS5 = "fts5"
TSVECTOR = "tsvector"

_CJK = CJK_GLOB.replace("'", "''")

_SQLITE_SCHEMA = [
    """CREATE VIRTUAL TABLE IF NOT EXISTS muca_search_words USING fts5(
        text, content='muca_messages', content_rowid='id', columnsize=0,
        tokenize='unicode61 remove_diacritics 2')""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS muca_search_cjk USING fts5(
        text, content='muca_messages', content_rowid='id', columnsize=0,
        tokenize='trigram')""",
    f"""CREATE TRIGGER IF NOT EXISTS muca_search_insert
        AFTER INSERT ON muca_messages BEGIN
        INSERT INTO muca_search_words (rowid, text) VALUES (new.id, new.text);
        INSERT INTO muca_search_cjk (rowid, text)
            SELECT new.id, new.text WHERE new.text GLOB '{_CJK}';
        END""",
    f"""CREATE TRIGGER IF NOT EXISTS muca_search_delete
        AFTER DELETE ON muca_messages BEGIN
        INSERT INTO muca_search_words (muca_search_words, rowid, text)
            VALUES ('delete', old.id, old.text);
        INSERT INTO muca_search_cjk (muca_search_cjk, rowid, text)
            SELECT 'delete', old.id, old.text WHERE old.text GLOB '{_CJK}';
        END""",
    # A text replaced (a deletion by its author or a moderator keeps the
    # id and empties the text) is indexed anew.
    f"""CREATE TRIGGER IF NOT EXISTS muca_search_update
        AFTER UPDATE OF text ON muca_messages BEGIN
        INSERT INTO muca_search_words (muca_search_words, rowid, text)
            VALUES ('delete', old.id, old.text);
        INSERT INTO muca_search_cjk (muca_search_cjk, rowid, text)
            SELECT 'delete', old.id, old.text WHERE old.text GLOB '{_CJK}';
        INSERT INTO muca_search_words (rowid, text) VALUES (new.id, new.text);
        INSERT INTO muca_search_cjk (rowid, text)
            SELECT new.id, new.text WHERE new.text GLOB '{_CJK}';
        END""",
]

_POSTGRES_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS muca_search (
        message_id BIGINT PRIMARY KEY
            REFERENCES muca_messages (id) ON DELETE CASCADE,
        doc TSVECTOR NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS muca_search_doc ON muca_search USING GIN (doc)",
    # A text replaced (a deletion by its author or a moderator keeps the id
    # and empties the text) is no longer found by its old words; whoever
    # writes a new text indexes it (``insert``).
    """CREATE OR REPLACE FUNCTION muca_search_forget() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM muca_search WHERE message_id = OLD.id;
            RETURN NEW;
        END $$""",
]

#: Made once (see ``create``): dropping and making it again at every open
#: would lock the messages of every server of a cluster for a moment.
_POSTGRES_TRIGGER = """CREATE TRIGGER muca_search_update
    AFTER UPDATE OF text ON muca_messages
    FOR EACH ROW WHEN (OLD.text IS DISTINCT FROM NEW.text)
    EXECUTE FUNCTION muca_search_forget()"""

#: Messages indexed at once when a migration builds the index.
BUILD_BATCH = 2000


def create(cursor: Any, dialect: Dialect) -> None:
    """Create the index's tables and triggers if absent."""
    schema = _SQLITE_SCHEMA if dialect.full_text == FTS5 else _POSTGRES_SCHEMA
    for statement in schema:
        cursor.execute(statement)
    if dialect.full_text == TSVECTOR:
        cursor.execute(
            "SELECT 1 FROM pg_trigger WHERE tgname = 'muca_search_update'"
            " AND tgrelid = 'muca_messages'::regclass"
        )
        if not cursor.fetchall():
            cursor.execute(_POSTGRES_TRIGGER)


def build(cursor: Any, dialect: Dialect) -> int:
    """Index every message kept (a migration from before version 6);
    return how many messages were read."""
    cursor.execute("SELECT COUNT(*) FROM muca_messages")
    total = int(cursor.fetchall()[0][0])
    if not total:
        return 0
    log.info("muca: building the search index of {total} messages", total=total)
    if dialect.full_text == FTS5:
        cursor.execute(
            "INSERT INTO muca_search_words (muca_search_words) VALUES ('rebuild')"
        )
        cursor.execute(
            "INSERT INTO muca_search_cjk (rowid, text)"
            " SELECT id, text FROM muca_messages WHERE text GLOB ?",
            (CJK_GLOB,),
        )
    else:
        after = done = 0
        while True:
            cursor.execute(
                dialect.sql(
                    "SELECT id, text FROM muca_messages WHERE id > ?"
                    " ORDER BY id LIMIT ?"
                ),
                (after, BUILD_BATCH),
            )
            rows = cursor.fetchall()
            if not rows:
                break
            _insert_documents(
                cursor, dialect, [(int(i), dialect.decode_text(t)) for i, t in rows]
            )
            after = int(rows[-1][0])
            done += len(rows)
            log.info(
                "muca: search index: {done} of {total} messages",
                done=done,
                total=total,
            )
    log.info("muca: the search index holds the {total} messages", total=total)
    return total


def compact(cursor: Any, dialect: Dialect) -> None:
    """Merge SQLite's index into one segment each, dropping what deleted
    messages left (its pages are free then; a pruning to a size needs
    that). Reads and writes the whole index: for pruning only."""
    if dialect.full_text == FTS5:
        for table in ("muca_search_words", "muca_search_cjk"):
            cursor.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")


def insert(cursor: Any, dialect: Dialect, messages: Sequence[ChatMessage]) -> None:
    """Index ``messages`` (PostgreSQL; SQLite's triggers do it there)."""
    if dialect.full_text == TSVECTOR:
        _insert_documents(cursor, dialect, [(m.id, m.text) for m in messages])


#: Rows in one INSERT of documents.
_ROWS_PER_INSERT = 128


def _insert_documents(
    cursor: Any, dialect: Dialect, texts: Sequence[tuple[int, str]]
) -> None:
    rows = [(ident, doc) for ident, text in texts if (doc := document(text))]
    one = f"({dialect.placeholder}, {dialect.placeholder}::tsvector)"
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        cursor.execute(
            "INSERT INTO muca_search (message_id, doc) VALUES "
            + ", ".join([one] * len(chunk)),
            [value for row in chunk for value in row],
        )


def search_sql(
    dialect: Dialect,
    query: Query,
    reader: str | None,
    private: bool,
    rooms: Sequence[str],
    sender: str | None,
    before: int,
    limit: int,
    after: int = 0,
    materialized: bool = False,
) -> tuple[str, list[Any]] | None:
    """The statement (and its parameters) that reads the newest ``limit``
    messages matching ``query`` that ``reader`` may read (the broadcasts
    of ``rooms``; with ``private``, its own private and group messages),
    from ``sender`` if given, with an id below ``before`` and above
    ``after``, as rows for ``sql.rows_to_messages``; None: it may read
    nothing. ``materialized`` (PostgreSQL): every match found through the
    GIN index first, then ordered (see ``sql.search``)."""
    private = private and reader is not None
    rooms = list(dict.fromkeys(rooms))
    if not rooms and not private:
        return None
    params: list[Any] = []
    if dialect.full_text == FTS5:
        words, cjk = query.word_terms, query.cjk_terms
        driver = "muca_search_words" if words else "muca_search_cjk"
        ids = f"SELECT f.rowid AS id FROM {driver}(?) AS f"
        params.append(fts5_match(words or cjk))
        key = "f.rowid"
        extra = ""
        if words and cjk:
            extra = " AND m.id IN (SELECT rowid FROM muca_search_cjk(?))"
    elif materialized:
        ids = (
            "WITH f (message_id) AS MATERIALIZED (SELECT message_id"
            " FROM muca_search WHERE doc @@ ?::tsquery"
            " AND message_id < ? AND message_id > ?)"
            " SELECT f.message_id AS id FROM f"
        )
        params += [tsquery(query.terms), before, after]
        key = "f.message_id"
        extra = ""
    else:
        ids = "SELECT f.message_id AS id FROM muca_search AS f"
        key = "f.message_id"
        extra = " AND f.doc @@ ?::tsquery"
    ids += f" JOIN muca_messages AS m ON m.id = {key} WHERE {key} < ? AND {key} > ?"
    params += [before, after]
    if extra:
        ids += extra
        params.append(
            fts5_match(query.cjk_terms)
            if dialect.full_text == FTS5
            else tsquery(query.terms)
        )
    if sender is not None:
        ids += " AND m.sender = ?"
        params.append(sender)
    visible = []
    if rooms:
        visible.append(
            "(m.kind = 'ALL' AND m.room IN (" + ", ".join(["?"] * len(rooms)) + "))"
        )
        params += rooms
    if private:
        visible.append(
            "(m.kind <> 'ALL' AND (m.sender = ? OR EXISTS (SELECT 1"
            " FROM muca_recipients AS r WHERE r.message_id = m.id AND r.uid = ?)))"
        )
        params += [reader, reader]
    ids += " AND (" + " OR ".join(visible) + f") ORDER BY {key} DESC LIMIT ?"
    params.append(limit)
    statement = dialect.sql(
        f"WITH page (id) AS ({ids})"
        " SELECT m.id, m.ts, m.sender, m.kind, m.text, m.nickname, m.room, r.uid"
        " FROM page JOIN muca_messages AS m ON m.id = page.id"
        " LEFT JOIN muca_recipients AS r ON r.message_id = m.id"
        " ORDER BY m.id, r.position"
    )
    return statement, params
