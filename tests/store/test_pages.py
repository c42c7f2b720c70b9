"""Reading the store: who may read which message (the SQL agrees with
``may_read``), and the pages ``latest``, ``since`` and ``before`` give, on
SQLite and on a real PostgreSQL."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from muca.store import StoreError, may_read
from tests.store.support import (
    CONVERSATION,
    PostgresBackend,
    SQLiteBackend,
    StoreCase,
    busy_conversation,
    ids,
    message,
)


class PagesBehaviour(StoreCase):
    """Who reads what, page by page; mixed into one TestCase per backend."""

    async def test_broadcasts_are_for_everyone_private_only_for_its_parties(
        self,
    ) -> None:
        store = await self.opened()
        await store.append(CONVERSATION)
        expected = {
            "alice": [1, 2, 3, 4],
            "bob": [1, 2, 3, 4, 6],
            "carol": [1, 3, 4, 5, 6],
            "dave": [1, 4, 5, 6],
            # A third user sees nobody else's private or group messages.
            "eve": [1, 4],
        }
        for reader, visible in expected.items():
            page = await store.latest(reader, True, 50)
            self.assertEqual(ids(page), visible, reader)
            self.assertFalse(page.more)
            # The SQL and the rule written in Python agree.
            self.assertEqual(
                visible, [m.id for m in CONVERSATION if may_read(m, reader, True)]
            )
            # Without authentication: broadcasts only, even one's own private.
            page = await store.latest(reader, False, 50)
            self.assertEqual(ids(page), [1, 4], reader)
        page = await store.latest(None, True, 50)
        self.assertEqual(ids(page), [1, 4])

    async def test_messages_come_back_whole_with_recipients_in_order(self) -> None:
        store = await self.opened()
        await store.append(CONVERSATION)
        page = await store.latest("carol", True, 50)
        self.assertEqual(
            page.messages, [m for m in CONVERSATION if m.id in (1, 3, 4, 5, 6)]
        )
        self.assertEqual(page.messages[1].recipients, ("carol", "alice"))

    async def test_latest_is_the_newest_visible_oldest_first(self) -> None:
        store = await self.opened()
        broadcasts = [message(i) for i in range(10, 101, 10)]
        secret = message(55, "alice", "PRIVATE", ("bob",))
        await store.append(sorted([*broadcasts, secret], key=lambda m: m.id))
        page = await store.latest("eve", True, 3)
        self.assertEqual((ids(page), page.more), ([80, 90, 100], True))
        page = await store.latest("eve", True, 10)
        self.assertEqual(
            (ids(page), page.more), ([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], False)
        )
        page = await store.latest("bob", True, 6)
        self.assertEqual((ids(page), page.more), ([55, 60, 70, 80, 90, 100], True))
        page = await store.latest("bob", True, 11)
        self.assertEqual((len(page.messages), page.more), (11, False))
        page = await store.latest("eve", True, 0)
        self.assertEqual((ids(page), page.more), ([], True))

    async def test_since_gives_the_newest_after_an_id_and_says_more(self) -> None:
        store = await self.opened()
        await store.append([message(i) for i in range(10, 101, 10)])
        page = await store.since("eve", True, 70)
        self.assertEqual((ids(page), page.more), ([80, 90, 100], False))
        page = await store.since("eve", True, 30, limit=2)
        self.assertEqual((ids(page), page.more), ([90, 100], True))
        page = await store.since("eve", True, 75, limit=3)
        self.assertEqual((ids(page), page.more), ([80, 90, 100], False))
        page = await store.since("eve", True, 100)
        self.assertEqual((ids(page), page.more), ([], False))

    async def test_a_negative_limit_is_refused(self) -> None:
        store = await self.opened()
        with self.assertRaises(StoreError) as refused:
            await store.latest("eve", True, -1)
        self.assertIn("a page limit cannot be negative (-1)", str(refused.exception))

    async def test_since_gives_at_most_1000_unless_told(self) -> None:
        store = await self.opened()
        await store.append([message(i) for i in range(1, 1003)])
        page = await store.since("eve", True, 1)
        self.assertEqual((ids(page), page.more), (list(range(3, 1003)), True))
        page = await store.since("eve", True, 2)
        self.assertEqual((ids(page), page.more), (list(range(3, 1003)), False))

    async def test_since_counts_only_what_the_reader_may_see(self) -> None:
        store = await self.opened()
        await store.append(CONVERSATION)
        page = await store.since("eve", True, 1, limit=1)
        self.assertEqual((ids(page), page.more), ([4], False))
        page = await store.since("bob", True, 1, limit=2)
        self.assertEqual((ids(page), page.more), ([4, 6], True))

    async def test_before_scrolls_back_page_by_page(self) -> None:
        store = await self.opened()
        await store.append(
            [
                message(5, "alice", "PRIVATE", ("bob",)),
                *[message(i) for i in range(10, 101, 10)],
            ]
        )
        page = await store.before("eve", True, 40, 2)
        self.assertEqual((ids(page), page.more), ([20, 30], True))
        page = await store.before("eve", True, 40, 3)
        self.assertEqual((ids(page), page.more), ([10, 20, 30], False))
        # The private message at 5 is "more" for bob, nothing for eve.
        page = await store.before("eve", True, 20, 1)
        self.assertEqual((ids(page), page.more), ([10], False))
        page = await store.before("bob", True, 20, 1)
        self.assertEqual((ids(page), page.more), ([10], True))
        page = await store.before("bob", True, 10, 200)
        self.assertEqual((ids(page), page.more), ([5], False))
        page = await store.before("eve", True, 10, 200)
        self.assertEqual((ids(page), page.more), ([], False))

    async def test_every_page_is_right_across_thousands_of_messages(self) -> None:
        # More messages than SQLite's readers chunk, read at two points: the
        # older ones through its readers index, the newest from the messages.
        store = await self.opened()
        conversation = busy_conversation(2_345)

        async def check(readers: tuple[str, ...], upto: int) -> None:
            said = conversation[:upto]
            for reader in readers:
                expected = [m.id for m in said if may_read(m, reader, True)]
                self.assertEqual(await self.read_all(store, reader), expected)
                page = await store.latest(reader, True, 7)
                self.assertEqual(ids(page), expected[-7:])

        for start in range(0, 2_000, 100):
            await store.append(conversation[start : start + 100])
        await check(("alice", "frank"), 2_000)
        for start in range(2_000, len(conversation), 100):
            await store.append(conversation[start : start + 100])
        await check(("alice", "bob", "eve", "frank", "mallory"), len(conversation))
        # Reopened: the same.
        await store.close()
        store = await self.opened()
        await check(("carol", "frank"), len(conversation))


class SQLitePagesTests(SQLiteBackend, PagesBehaviour, TestCase):
    """Reading an SQLite file (a small readers chunk: see SQLiteBackend)."""


class PostgresPagesTests(PostgresBackend, PagesBehaviour, TestCase):
    """Reading a real PostgreSQL database."""
