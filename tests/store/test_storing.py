"""Storing: ``append`` keeps messages in id order and refuses ids that do not
increase, a new database is empty, and messages, the last id and the known
users survive a reopen; on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from muca.store import StoreError, may_read
from muca.store.base import KnownUser
from tests.store.support import (
    CONVERSATION,
    NOW_MS,
    PostgresBackend,
    SQLiteBackend,
    StoreCase,
    ids,
    message,
)


class StoringBehaviour(StoreCase):
    """What a store keeps; mixed into one TestCase per backend."""

    async def test_a_new_database_is_empty(self) -> None:
        store = await self.opened()
        self.assertEqual(store.last_id(), 0)
        page = await store.latest("alice", True, 50)
        self.assertEqual((page.messages, page.more), ([], False))
        self.assertEqual(store.known_at_open(), [])

    async def test_messages_and_last_id_survive_a_reopen(self) -> None:
        store = await self.opened()
        odd = message(7, "alice", "PRIVATE", ("bob",), text="nul\x00 é ✓ 🎉 \n end")
        await store.append([*CONVERSATION, odd])
        self.assertEqual(store.last_id(), 7)
        await store.close()
        again = await self.opened()
        self.assertEqual(again.last_id(), 7)
        page = await again.latest("bob", True, 50)
        self.assertEqual(
            page.messages, [m for m in [*CONVERSATION, odd] if may_read(m, "bob", True)]
        )
        await again.append([message(8)])
        self.assertEqual(again.last_id(), 8)

    async def test_many_messages_go_in_one_append(self) -> None:
        store = await self.opened()
        # More rows and recipients than SQLite's 999/32766 variables.
        batch = [
            message(i, "alice", "GROUP", ("bob", "carol", f"user{i}"))
            for i in range(1, 12_001)
        ]
        await store.append(batch)
        self.assertEqual(store.last_id(), 12_000)
        page = await store.latest("carol", True, 20_000)
        self.assertEqual(page.messages, batch)
        page = await store.latest("user77", True, 20_000)
        self.assertEqual(ids(page), [77])

    async def test_appends_made_at_once_fire_in_order_and_are_all_stored(
        self,
    ) -> None:
        store = await self.opened()
        fired: list[int] = []
        appends = [
            store.append([message(i)]).addCallback(lambda _, i=i: fired.append(i))
            for i in range(1, 201)
        ]
        for d in appends:
            await d
        self.assertEqual(fired, list(range(1, 201)))
        self.assertEqual(store.last_id(), 200)
        page = await store.latest("eve", True, 500)
        self.assertEqual(ids(page), list(range(1, 201)))
        # An id not above every one appended before is refused at once.
        with self.assertRaises(StoreError):
            await store.append([message(200)])

    async def test_ids_must_increase(self) -> None:
        store = await self.opened()
        await store.append([message(3)])
        refusals = [
            ([message(3)], "message id 3 is not above the previous id 3"),
            ([message(5), message(4)], "message id 4 is not above the previous id 5"),
            ([message(9, kind="X")], "unknown message kind 'X'"),
            ([message(9, to=("bob",))], "broadcast 9 has recipients"),
        ]
        for bad, why in refusals:
            with self.assertRaises(StoreError) as refused:
                await store.append(bad)
            self.assertEqual(str(refused.exception), why)
        self.assertEqual(store.last_id(), 3)

    async def test_known_users_are_remembered_across_a_reopen(self) -> None:
        store = await self.opened()
        await store.remember_user("alice", "Alice", NOW_MS)
        await store.remember_user("bob", "Bob", NOW_MS + 1)
        # Seen again, renamed: the newest nickname, the least recent first.
        await store.remember_user("alice", "Ally", NOW_MS + 2)
        expected = [
            KnownUser("bob", "Bob", NOW_MS + 1),
            KnownUser("alice", "Ally", NOW_MS + 2),
        ]
        await store.close()
        again = await self.opened()
        self.assertEqual(again.known_at_open(), expected)

    async def test_messages_keep_their_senders_nickname(self) -> None:
        store = await self.opened()
        named = [
            message(1, "alice", nickname="Alice"),
            message(2, "bob", "PRIVATE", ("alice",), nickname="Bob"),
            message(3, "alice", nickname="Ally"),
        ]
        await store.append(named)
        self.assertEqual((await store.latest("alice", True, 10)).messages, named)
        await store.close()
        again = await self.opened()
        page = await again.latest("alice", True, 10)
        self.assertEqual([m.nickname for m in page.messages], ["Alice", "Bob", "Ally"])


class SQLiteStoringTests(SQLiteBackend, StoringBehaviour, TestCase):
    """Storing in an SQLite file."""


class PostgresStoringTests(PostgresBackend, StoringBehaviour, TestCase):
    """Storing in a real PostgreSQL database."""

    async def test_a_failed_append_stores_nothing_of_its_batch(self) -> None:
        first = await self.opened()
        # Two servers on one database (a cluster's, without the cluster's
        # lock): the second's last_id (0) is out of date.
        second = await self.opened()
        await first.append([message(1), message(2)])
        with self.assertRaises(StoreError):
            await second.append([message(2), message(3)])
        page = await first.latest("eve", True, 50)
        self.assertEqual(ids(page), [1, 2])
