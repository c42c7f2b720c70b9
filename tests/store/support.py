"""Store test pieces: the two backends every store behaviour runs on, and the
messages the tests store.

A behaviour is a mixin of :class:`StoreCase`; each test module mixes it
into one ``TestCase`` per backend::

    class PagesBehaviour(StoreCase): ...

    class SQLitePagesTests(SQLiteBackend, PagesBehaviour, TestCase): ...
    class PostgresPagesTests(PostgresBackend, PagesBehaviour, TestCase): ...

:class:`SQLiteBackend` gives each test an SQLite file of its own
(``self.path`` in ``self.directory``), :class:`PostgresBackend` a fresh
database on a real PostgreSQL server started by the tests (``self.conninfo``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from twisted.trial.unittest import TestCase

from muca.store import ChatMessage, MessageStore
from muca.store.postgres import PostgresStore
from muca.store.sqlite import SQLiteStore
from tests.support import postgres as pgsupport

#: The SQLite store's readers chunk in these tests (see SQLiteStore).
READERS_CHUNK = 500

DAY_MS = 86_400_000
NOW_MS = 1_800_000_000_000


def message(
    id: int,
    sender: str = "alice",
    kind: str = "ALL",
    to: tuple[str, ...] = (),
    text: str | None = None,
    ts: int | None = None,
    nickname: str | None = None,
    room: str = "",
) -> ChatMessage:
    """A message with defaults that keep the tests short."""
    return ChatMessage(
        id=id,
        ts=NOW_MS + id if ts is None else ts,
        sender=sender,
        kind=kind,
        recipients=to,
        text=f"message {id}" if text is None else text,
        nickname=nickname,
        room=room,
    )


#: A small conversation with every kind of message and five users.
CONVERSATION = [
    message(1, "alice"),
    message(2, "alice", "PRIVATE", ("bob",)),
    message(3, "bob", "GROUP", ("carol", "alice")),
    message(4, "carol"),
    message(5, "carol", "PRIVATE", ("dave",)),
    message(6, "dave", "GROUP", ("bob", "carol")),
]


def busy_conversation(count: int) -> list[ChatMessage]:
    """``count`` messages of every kind among five users, and a sixth who
    only ever receives (in a group)."""
    users = ["alice", "bob", "carol", "dave", "eve"]
    messages = []
    for i in range(1, count + 1):
        sender = users[i % 5]
        if i % 3 == 0:
            messages.append(message(i, sender))
        elif i % 3 == 1:
            messages.append(message(i, sender, "PRIVATE", (users[(i * 7) % 5],)))
        else:
            to = (users[(i + 1) % 5], "frank") if i % 11 == 0 else (users[(i + 2) % 5],)
            messages.append(message(i, sender, "GROUP", to))
    return messages


def ids(page: Any) -> list[int]:
    """The ids of a page's messages, in page order."""
    return [m.id for m in page.messages]


if TYPE_CHECKING:
    _Mixin = TestCase
else:
    # Not a TestCase itself, or trial and pytest would run it with no backend.
    _Mixin = object


class StoreCase(_Mixin):
    """What the store tests of every backend share; a backend below gives
    :meth:`new_store`."""

    def new_store(self) -> MessageStore:
        """An unopened store on this test's database (the same one each call)."""
        raise NotImplementedError

    async def opened(self) -> MessageStore:
        """A new store on this test's database, opened; closed at the end."""
        store = self.new_store()
        await store.open()
        self.addCleanup(store.close)
        return store

    async def read_all(self, store: MessageStore, reader: str) -> list[int]:
        """Every message ``reader`` may read, by scrolling back from the
        newest in pages of 400; checks that ``since`` agrees."""
        page = await store.latest(reader, True, 400)
        seen = ids(page)
        while page.more:
            page = await store.before(reader, True, seen[0], 400)
            seen = ids(page) + seen
        since = await store.since(reader, True, 0, limit=100_000)
        self.assertEqual(ids(since), seen)
        return seen


class SQLiteBackend(StoreCase):
    """The store tests on an SQLite file of the test's own."""

    def setUp(self) -> None:
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.path = os.path.abspath(os.path.join(self.directory, "muca.db"))

    def new_store(self) -> MessageStore:
        # A small chunk: pages read the readers index and the messages past
        # it in the tests' few hundred messages.
        return SQLiteStore(self.path, readers_chunk=READERS_CHUNK)


class PostgresBackend(StoreCase):
    """The store tests on a real PostgreSQL server started by the tests."""

    def setUp(self) -> None:
        self.conninfo = pgsupport.fresh_database(self)

    def new_store(self) -> MessageStore:
        return PostgresStore(self.conninfo)
