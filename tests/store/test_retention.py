"""Retention: ``prune`` deletes messages past an age, beyond a count, or the
oldest of a database over its size bound, on SQLite and on a real
PostgreSQL, and never lets an id come back."""

from __future__ import annotations

import os
import sqlite3

import psycopg
from twisted.trial.unittest import TestCase

from muca.store import postgres, sqlite
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


def big_messages(first: int, count: int) -> list:
    """``count`` broadcasts of 2,000 characters that do not compress."""
    return [
        message(i, text=os.urandom(1000).hex()) for i in range(first, first + count)
    ]


class RetentionBehaviour(StoreCase):
    """What prune keeps; mixed into one TestCase per backend, which says
    how big its database is, measured behind the store."""

    def used_bytes(self) -> int:
        """The bytes the database's tables take now."""
        raise NotImplementedError

    async def test_a_database_over_its_size_bound_loses_its_oldest(self) -> None:
        store = await self.opened()
        await store.append(big_messages(1, 400))
        # Nothing to prune under the bound (SQLite moves its spool in first).
        self.assertEqual(await store.prune(None, None, NOW_MS, 10**9), 0)
        full = self.used_bytes()
        bound = full // 2
        deleted = await store.prune(None, None, NOW_MS, bound)
        self.assertTrue(120 <= deleted <= 280, deleted)
        page = await store.latest("alice", True, 1000)
        self.assertEqual(ids(page), list(range(deleted + 1, 401)))
        # Pruned once: the same bound prunes nothing more until it grows.
        self.assertEqual(await store.prune(None, None, NOW_MS, bound), 0)
        await store.append(big_messages(401, 400))
        self.assertEqual(await store.prune(None, None, NOW_MS, 10**9), 0)
        more = await store.prune(None, None, NOW_MS, bound)
        self.assertGreater(more, 0)
        page = await store.latest("alice", True, 1000)
        self.assertEqual(ids(page), list(range(deleted + more + 1, 801)))

    async def test_no_size_bound_keeps_everything(self) -> None:
        store = await self.opened()
        await store.append(big_messages(1, 50))
        self.assertEqual(await store.prune(None, None, NOW_MS, None), 0)
        self.assertEqual(len((await store.latest("bob", True, 100)).messages), 50)

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

    def used_bytes(self) -> int:
        with sqlite3.connect(self.path) as db:
            used = sqlite.DIALECT.used_bytes(db.cursor())
        db.close()
        return used

    async def test_pruned_to_its_size_bound(self) -> None:
        # SQLite's pages in use fall as soon as rows go: the bound holds.
        store = await self.opened()
        await store.append(big_messages(1, 400))
        await store.prune(None, None, NOW_MS, None)
        bound = self.used_bytes() // 3
        await store.prune(None, None, NOW_MS, bound)
        self.assertLessEqual(self.used_bytes(), bound)


class PostgresRetentionTests(PostgresBackend, RetentionBehaviour, TestCase):
    """Pruning a real PostgreSQL database."""

    def used_bytes(self) -> int:
        with psycopg.connect(self.conninfo) as db:
            with db.cursor() as cursor:
                return postgres.DIALECT.used_bytes(cursor)
