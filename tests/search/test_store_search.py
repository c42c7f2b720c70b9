"""Search in the store, on SQLite and on a real PostgreSQL: words,
prefixes, phrases, case and accents, Chinese and Japanese, what a reader
may find (another user's private messages, another room's broadcasts
never), filters, pages, pruned messages gone; the same results on both."""

from __future__ import annotations

import sqlite3

import psycopg
from twisted.trial.unittest import TestCase

from muca.store import MessageStore, sql
from muca.store.search import parse
from tests.store.support import (
    DAY_MS,
    NOW_MS,
    PostgresBackend,
    SQLiteBackend,
    StoreCase,
    ids,
    message,
)

#: Texts of broadcasts in the default room, by id.
TEXTS = {
    1: "Let us plan the release for Friday",
    2: "The planet is round",
    3: "I planned nothing; planning is hard",
    4: "Meet me at the Café Müller",
    5: "cafe au lait, s'il vous plaît",
    6: "東京タワーに行きました",
    7: "我们明天去北京大学吧",
    8: "release plan B is ready",
    9: "plan the B release",
    10: "ＦＵＬＬ width and CAPITAL Letters",
}


class SearchBehaviour(StoreCase):
    """Search on one backend."""

    async def stored(self) -> MessageStore:
        store = await self.opened()
        await store.append(
            [message(i, "alice" if i % 2 else "bob", text=t) for i, t in TEXTS.items()]
        )
        return store

    async def found(self, store: MessageStore, q: str, **kwargs: object) -> list[int]:
        page = await store.search("carol", False, parse(q), **kwargs)  # type: ignore[arg-type]
        return ids(page)

    async def test_words_match_whole_words_only(self) -> None:
        store = await self.stored()
        self.assertEqual(await self.found(store, "plan"), [1, 8, 9])
        self.assertEqual(await self.found(store, "PLAN release"), [1, 8, 9])
        self.assertEqual(await self.found(store, "nothing"), [3])
        self.assertEqual(await self.found(store, "absent"), [])

    async def test_a_star_matches_prefixes(self) -> None:
        store = await self.stored()
        self.assertEqual(await self.found(store, "plan*"), [1, 2, 3, 8, 9])
        self.assertEqual(await self.found(store, "planne*"), [3])

    async def test_phrases_match_words_side_by_side_in_order(self) -> None:
        store = await self.stored()
        self.assertEqual(await self.found(store, '"plan B"'), [8])
        self.assertEqual(await self.found(store, '"B release"'), [9])
        self.assertEqual(await self.found(store, '"release plan"'), [8])
        self.assertEqual(await self.found(store, '"plan rel"*'), [])
        self.assertEqual(await self.found(store, '"the B rel"*'), [9])

    async def test_case_and_accents_do_not_matter(self) -> None:
        store = await self.stored()
        self.assertEqual(await self.found(store, "café"), [4, 5])
        self.assertEqual(await self.found(store, "CAFE"), [4, 5])
        self.assertEqual(await self.found(store, "muller plait"), [])
        self.assertEqual(await self.found(store, "Muller"), [4])
        self.assertEqual(await self.found(store, "PLAIT"), [5])
        # A decomposed accent (e + U+0301) is an accent too.
        self.assertEqual(await self.found(store, "cafe\u0301"), [4, 5])
        self.assertEqual(await self.found(store, "capital letters"), [10])

    async def test_japanese_and_chinese_are_found_by_parts(self) -> None:
        store = await self.stored()
        self.assertEqual(await self.found(store, "東京タワー"), [6])
        self.assertEqual(await self.found(store, "タワーに"), [6])
        self.assertEqual(await self.found(store, "行きました"), [6])
        self.assertEqual(await self.found(store, "北京大学"), [7])
        self.assertEqual(await self.found(store, "明天去"), [7])
        self.assertEqual(await self.found(store, "大阪城"), [])
        self.assertEqual(await self.found(store, "北京大 大学吧"), [7])

    async def test_chinese_among_words(self) -> None:
        store = await self.opened()
        await store.append(
            [
                message(1, text="meeting in 北京大学 tomorrow"),
                message(2, text="meeting tomorrow"),
                message(3, text="北京大学 is far"),
            ]
        )
        page = await store.search(None, False, parse("meeting 北京大学"))
        self.assertEqual(ids(page), [1])

    async def test_a_readers_private_messages_and_other_rooms_stay_hidden(
        self,
    ) -> None:
        store = await self.opened()
        await store.append(
            [
                message(1, "alice", text="secret plan"),
                message(2, "alice", "PRIVATE", ("bob",), text="secret plan"),
                message(3, "bob", "GROUP", ("carol", "alice"), text="secret plan"),
                message(4, "carol", text="secret plan", room="hidden"),
                message(5, "dave", "PRIVATE", ("eve",), text="secret plan"),
                message(6, "eve", text="secret plan", room="dev"),
            ]
        )
        q = parse("secret")

        async def found(
            reader: str | None, private: bool, rooms: tuple[str, ...]
        ) -> list[int]:
            return ids(await store.search(reader, private, q, rooms))

        self.assertEqual(await found("bob", True, ("",)), [1, 2, 3])
        self.assertEqual(await found("carol", True, ("", "hidden")), [1, 3, 4])
        self.assertEqual(await found("alice", True, ("dev",)), [2, 3, 6])
        # Without authentication, nobody's private messages.
        self.assertEqual(await found("bob", False, ("",)), [1])
        self.assertEqual(await found(None, True, ("",)), [1])
        self.assertEqual(await found("frank", True, ()), [])
        self.assertEqual(await found("frank", False, ()), [])

    async def test_from_before_and_limit(self) -> None:
        store = await self.opened()
        await store.append(
            [
                message(i, "alice" if i % 3 else "bob", text=f"ping {i}")
                for i in range(1, 31)
            ]
        )
        q = parse("ping")
        page = await store.search(None, False, q, limit=5)
        self.assertEqual((ids(page), page.more), ([26, 27, 28, 29, 30], True))
        page = await store.search(None, False, q, before=26, limit=5)
        self.assertEqual((ids(page), page.more), ([21, 22, 23, 24, 25], True))
        page = await store.search(None, False, q, before=4, limit=5)
        self.assertEqual((ids(page), page.more), ([1, 2, 3], False))
        page = await store.search(None, False, q, sender="bob", limit=3)
        self.assertEqual((ids(page), page.more), ([24, 27, 30], True))
        page = await store.search(None, False, q, sender="bob", before=7, limit=3)
        self.assertEqual((ids(page), page.more), ([3, 6], False))
        found = page.messages[-1]
        self.assertEqual(
            (found.sender, found.text, found.kind), ("bob", "ping 6", "ALL")
        )

    async def test_a_message_is_found_as_soon_as_it_is_appended(self) -> None:
        store = await self.opened()
        for i in range(1, 4):
            await store.append([message(i, text=f"fresh news {i}")])
            self.assertEqual(
                ids(await store.search(None, False, parse("news"))),
                list(range(1, i + 1)),
            )

    async def test_pruned_messages_are_never_found(self) -> None:
        store = await self.opened()
        await store.append(
            [
                message(1, text="old ramen 東京タワー", ts=NOW_MS - 10 * DAY_MS),
                message(2, text="old ramen 東京タワー", ts=NOW_MS - 9 * DAY_MS),
                message(3, text="new ramen 東京タワー", ts=NOW_MS),
                message(4, text="newer ramen 東京タワー", ts=NOW_MS),
            ]
        )
        self.assertEqual(await store.prune(5, None, NOW_MS), 2)
        self.assertEqual(await self.found(store, "ramen"), [3, 4])
        self.assertEqual(await self.found(store, "東京タワー"), [3, 4])
        await store.prune(None, 1, NOW_MS)
        self.assertEqual(await self.found(store, "ramen"), [4])
        self.assertEqual(await self.found(store, "東京タワー"), [4])
        self.assertEqual(await self.found(store, "old"), [])

    async def test_a_text_emptied_in_the_database_is_no_longer_found(self) -> None:
        # What a deletion (moderation's DELETE) does to a message's row: the
        # id stays, the text goes, and search forgets its words.
        store = await self.stored()
        await store.close()
        self.empty_text(4)
        store = await self.opened()
        self.assertEqual(await self.found(store, "cafe"), [5])
        self.assertEqual(await self.found(store, "muller"), [])
        self.assertEqual(await self.found(store, "plan"), [1, 8, 9])

    def empty_text(self, ident: int) -> None:
        """Set message ``ident``'s text to '' behind the store."""
        raise NotImplementedError

    async def test_the_index_survives_a_restart(self) -> None:
        store = await self.stored()
        await store.close()
        store = await self.opened()
        self.assertEqual(await self.found(store, "plan*"), [1, 2, 3, 8, 9])
        self.assertEqual(await self.found(store, "北京大学"), [7])

    async def test_query_text_never_reaches_the_database_as_syntax(self) -> None:
        store = await self.stored()
        for q in [
            "plan OR planet",
            "NEAR(plan release)",
            "plan:* | planet",
            "x' OR 1=1 --",
            "text:plan",
            "^plan",
            "plan AND NOT release",
        ]:
            await self.found(store, q)  # no error whatever the text
        self.assertEqual(await self.found(store, "plan OR"), [])
        self.assertEqual(await self.found(store, "NOT plan"), [])


class SQLiteSearchTests(SQLiteBackend, SearchBehaviour, TestCase):
    """Search on SQLite."""

    def empty_text(self, ident: int) -> None:
        db = sqlite3.connect(self.path)
        with db:
            db.execute("UPDATE muca_messages SET text = '' WHERE id = ?", (ident,))
        db.close()


class PostgresSearchTests(PostgresBackend, SearchBehaviour, TestCase):
    """Search on PostgreSQL."""

    def empty_text(self, ident: int) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as db:
            db.execute(
                "UPDATE muca_messages SET text = ''::bytea WHERE id = %s", (ident,)
            )


class PostgresTwoStepSearchTests(PostgresSearchTests):
    """Search on PostgreSQL with a walk of 3 messages: what the newest
    three lack comes from the GIN index's matches (see sql.SEARCH_WINDOW),
    with the same results."""

    def setUp(self) -> None:
        super().setUp()
        self.patch(sql, "SEARCH_WINDOW", 3)
