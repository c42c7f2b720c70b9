"""Retention: ``prune`` deletes messages past an age or beyond a count, on
SQLite and on a real PostgreSQL, and never lets an id come back."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.store.support import (
    CONVERSATION,
    DAY_MS,
    NOW_MS,
    PostgresBackend,
    SQLiteBackend,
    StoreCase,
    ids,
    message,
)


class RetentionBehaviour(StoreCase):
    """What prune keeps; mixed into one TestCase per backend."""

    async def test_prune_by_count_keeps_the_newest(self) -> None:
        store = await self.opened()
        await store.append(CONVERSATION + [message(i) for i in range(7, 11)])
        self.assertEqual(await store.prune(None, 3, NOW_MS), 7)
        page = await store.latest("carol", True, 50)
        self.assertEqual((ids(page), page.more), ([8, 9, 10], False))
        self.assertEqual(await store.prune(None, 3, NOW_MS), 0)

    async def test_prune_by_age_deletes_the_old(self) -> None:
        store = await self.opened()
        await store.append(
            [
                message(1, ts=NOW_MS - 10 * DAY_MS),
                message(2, "bob", "PRIVATE", ("alice",), ts=NOW_MS - 3 * DAY_MS),
                message(3, ts=NOW_MS - 1 * DAY_MS),
                message(4, ts=NOW_MS),
            ]
        )
        self.assertEqual(await store.prune(2.5, None, NOW_MS), 2)
        page = await store.latest("alice", True, 50)
        self.assertEqual((ids(page), page.more), ([3, 4], False))
        self.assertEqual(await store.prune(0.5, 1, NOW_MS), 1)
        self.assertEqual(ids(await store.latest("alice", True, 50)), [4])

    async def test_ids_are_not_reused_after_pruning_everything(self) -> None:
        store = await self.opened()
        await store.append([message(1), message(2)])
        self.assertEqual(await store.prune(None, 0, NOW_MS), 2)
        await store.close()
        again = await self.opened()
        self.assertEqual(again.last_id(), 2)


class SQLiteRetentionTests(SQLiteBackend, RetentionBehaviour, TestCase):
    """Pruning an SQLite file."""


class PostgresRetentionTests(PostgresBackend, RetentionBehaviour, TestCase):
    """Pruning a real PostgreSQL database."""
