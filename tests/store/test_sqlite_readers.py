"""SQLite's readers index (``muca_readers``): only servers with ``--auth``
read private pages, and only they pay for the index. A store that never
read a private page leaves it empty; the first private page catches it up,
and from then on it follows the messages a chunk at a time."""

from __future__ import annotations

import sqlite3

from twisted.trial.unittest import TestCase

from muca.store import may_read
from tests.store.support import READERS_CHUNK, SQLiteBackend, busy_conversation

COUNT = 3 * READERS_CHUNK + 120


class SQLiteReadersIndexTests(SQLiteBackend, TestCase):
    """When the readers index is written, and that pages read right either way."""

    def index(self) -> tuple[int, int]:
        """(rows in muca_readers, the newest message id they cover)."""
        with sqlite3.connect(self.path) as db:
            rows = db.execute("SELECT COUNT(*) FROM muca_readers").fetchone()[0]
            mark = db.execute(
                "SELECT value FROM muca_meta WHERE key = 'readers_upto'"
            ).fetchone()
        return rows, int(mark[0]) if mark else 0

    async def test_a_store_that_reads_no_private_page_never_writes_it(self) -> None:
        messages = busy_conversation(COUNT)
        store = await self.opened()
        for start in range(0, COUNT, 100):
            await store.append(messages[start : start + 100])
            # What a server without --auth asks: public pages only.
            page = await store.latest(None, False, 20)
        self.assertEqual(
            [m.id for m in page.messages],
            [m.id for m in messages if m.kind == "ALL"][-20:],
        )
        await store.close()
        self.assertEqual(self.index(), (0, 0))

    async def test_the_first_private_page_catches_it_up_then_it_follows(
        self,
    ) -> None:
        messages = busy_conversation(COUNT)
        store = await self.opened()
        await store.append(messages)
        await store.close()
        self.assertEqual(self.index(), (0, 0))

        store = await self.opened()
        page = await store.latest("frank", True, 10)
        # frank only ever receives in groups: the page must still be his.
        self.assertEqual(
            [m.id for m in page.messages],
            [m.id for m in messages if may_read(m, "frank", True)][-10:],
        )
        rows, mark = self.index()
        self.assertEqual(mark, COUNT)
        self.assertGreater(rows, COUNT)  # a sender and a recipient at least

        more = busy_conversation(COUNT + 2 * READERS_CHUNK)[COUNT:]
        for start in range(0, len(more), 100):
            await store.append(more[start : start + 100])
        await store.close()
        rows_after, mark_after = self.index()
        # Written a chunk at a time while the store ran (and not at close):
        # all but what came after the last full chunk is in it.
        self.assertGreaterEqual(mark_after, COUNT + READERS_CHUNK)
        self.assertGreater(rows_after, rows)
