"""Retention: the history's oldest messages deleted past an age, a count or
a size (``--history-days``, ``--history-max``, ``--history-bytes``).

Run on a database thread inside the caller's transaction, as the rest of
``muca.store.sql``, of whose schema and helpers it is a part.
"""

from __future__ import annotations

from typing import Any

from muca.store import search_index, sql
from muca.store.base import StoreError

MS_PER_DAY = 86_400_000


def prune(
    cursor: Any,
    dialect: sql.Dialect,
    max_age_days: float | None,
    max_count: int | None,
    now_ms: int,
    max_bytes: int | None = None,
) -> int:
    """Delete messages older than ``max_age_days``, beyond the newest
    ``max_count``, or the oldest of those past ``max_bytes`` (see
    ``prune_to_size``); return how many went."""
    if max_count is not None and max_count < 0:
        raise StoreError(f"cannot keep a negative number of messages ({max_count})")
    if max_bytes is not None and max_bytes < 0:
        raise StoreError(f"cannot keep a negative number of bytes ({max_bytes})")
    # Recorded first: if every message goes, the next open must still not
    # hand out an id that clients have already seen.
    high_water = sql.read_last_id(cursor, dialect)
    if high_water:
        sql.write_meta(cursor, dialect, "high_water", str(high_water))
    deleted = 0
    if max_age_days is not None:
        cutoff = now_ms - int(max_age_days * MS_PER_DAY)
        for table in ("muca_recipients", "muca_readers"):
            cursor.execute(
                dialect.sql(
                    f"DELETE FROM {table} WHERE message_id IN"
                    " (SELECT id FROM muca_messages WHERE ts < ?)"
                ),
                (cutoff,),
            )
        cursor.execute(dialect.sql("DELETE FROM muca_messages WHERE ts < ?"), (cutoff,))
        deleted += max(cursor.rowcount, 0)
    if max_count is not None:
        cursor.execute(
            dialect.sql(
                "SELECT id FROM muca_messages ORDER BY id DESC LIMIT 1 OFFSET ?"
            ),
            (max_count,),
        )
        rows = cursor.fetchall()
        if rows:
            newest_to_delete = rows[0][0]
            deleted += sql.delete_range(cursor, dialect, 0, newest_to_delete)
    if max_bytes is not None:
        deleted += prune_to_size(cursor, dialect, max_bytes)
    return deleted


#: Rounds of deleting and measuring again that one pruning makes at most.
SIZE_ROUNDS = 8


def prune_to_size(cursor: Any, dialect: sql.Dialect, max_bytes: int) -> int:
    """Delete the oldest messages while the tables take more than
    ``max_bytes``; return how many went.

    The size is measured cheaply (``dialect.used_bytes``: pages, not rows),
    and the share of messages to delete guessed from it and the range of
    ids, so no step reads every row. Where deleted rows' space stays
    counted (PostgreSQL), the tables are measured once per pruning and
    pruned only when they grew past the bound and past their size after the
    last pruning (recorded in muca_meta): their free space is reused first.
    """
    size = dialect.used_bytes(cursor)
    if size <= max_bytes:
        return 0
    if not dialect.size_shrinks:
        if size <= int(sql.read_meta(cursor, dialect, "pruned_at_bytes") or 0):
            return 0
        sql.write_meta(cursor, dialect, "pruned_at_bytes", str(size))
    deleted = 0
    for _ in range(SIZE_ROUNDS):
        cursor.execute("SELECT MIN(id), MAX(id) FROM muca_messages")
        oldest, newest = cursor.fetchall()[0]
        if oldest is None:
            break
        span = int(newest) - int(oldest) + 1
        # At least one message a round, so that the rounds end.
        share = max(1, -(-span * (size - max_bytes) // size))
        deleted += sql.delete_range(cursor, dialect, 0, int(oldest) + share - 1)
        if not dialect.size_shrinks:
            break
        # FTS5 keeps a deleted message's words until its segments merge.
        search_index.compact(cursor, dialect)
        size = dialect.used_bytes(cursor)
        if size <= max_bytes:
            break
    return deleted
