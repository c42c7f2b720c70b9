"""Rooms in the store (schema version 4): each room's broadcasts read back
per room (the SQL agrees with ``may_read``), the rooms, their settings and
invitations and each account's rooms kept and read at the next open; on
SQLite and on a real PostgreSQL."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from muca.store import may_read
from muca.store.base import StoredRoom
from tests.store.support import (
    PostgresBackend,
    SQLiteBackend,
    StoreCase,
    ids,
    message,
)

#: Broadcasts in three rooms ("" the default), private and group ones.
ROOMS_CONVERSATION = [
    message(1, "alice"),
    message(2, "alice", room="dev"),
    message(3, "bob", "PRIVATE", ("alice",)),
    message(4, "carol", room="ops"),
    message(5, "bob", room="dev"),
    message(6, "carol", "GROUP", ("alice", "bob")),
    message(7, "dave"),
    message(8, "dave", room="ops", text="nul \x00 in ops"),
    message(9, "alice", room="dev"),
]


def many_rooms(count: int) -> list[str]:
    """``count`` room names."""
    return [f"room-{n}" for n in range(count)]


class RoomsBehaviour(StoreCase):
    """Rooms in the store; mixed into one TestCase per backend."""

    async def test_a_room_reads_back_its_own_broadcasts_only(self) -> None:
        store = await self.opened()
        await store.append(ROOMS_CONVERSATION)
        cases = [
            # (reader, private, rooms): what each reads, and may_read agrees.
            ("alice", False, ["dev"], [2, 5, 9]),
            ("alice", True, ["dev"], [2, 3, 5, 6, 9]),
            ("alice", False, ["ops"], [4, 8]),
            ("alice", True, [], [3, 6]),
            ("dave", True, [], []),
            ("alice", True, ["", "dev"], [1, 2, 3, 5, 6, 7, 9]),
            ("bob", False, ["", "dev", "ops"], [1, 2, 4, 5, 7, 8, 9]),
            ("bob", True, ["nowhere"], [3, 6]),
            (None, True, ["dev", "ops"], [2, 4, 5, 8, 9]),
        ]
        for reader, private, rooms, expected in cases:
            page = await store.latest(reader, private, 50, rooms=rooms)
            self.assertEqual(ids(page), expected, (reader, private, rooms))
            self.assertEqual(
                expected,
                [
                    m.id
                    for m in ROOMS_CONVERSATION
                    if may_read(m, reader, private, rooms)
                ],
            )
        # Without rooms: the default room's, as before rooms.
        self.assertEqual(ids(await store.latest("alice", False, 50)), [1, 7])
        page = await store.latest(None, False, 50, rooms=["ops"])
        self.assertEqual(
            [(m.room, m.text) for m in page.messages],
            [("ops", "message 4"), ("ops", "nul \x00 in ops")],
        )

    async def test_since_and_before_page_within_the_rooms_given(self) -> None:
        store = await self.opened()
        await store.append(ROOMS_CONVERSATION)
        page = await store.since("alice", True, 2, rooms=["dev", ""])
        self.assertEqual((ids(page), page.more), ([3, 5, 6, 7, 9], False))
        page = await store.since("alice", True, 2, limit=2, rooms=["dev", ""])
        self.assertEqual((ids(page), page.more), ([7, 9], True))
        page = await store.before(None, False, 9, 1, rooms=["dev"])
        self.assertEqual((ids(page), page.more), ([5], True))
        page = await store.before(None, False, 5, 1, rooms=["dev"])
        self.assertEqual((ids(page), page.more), ([2], False))

    async def test_a_reader_in_very_many_rooms_reads_them_all(self) -> None:
        store = await self.opened()
        names = many_rooms(150)
        await store.append([message(n + 1, room=name) for n, name in enumerate(names)])
        page = await store.latest("alice", True, 500, rooms=names[::2])
        self.assertEqual(ids(page), list(range(1, 151, 2)))
        page = await store.before("alice", True, 100, 3, rooms=names)
        self.assertEqual((ids(page), page.more), ([97, 98, 99], True))

    async def test_rooms_settings_invites_and_accounts_are_kept(self) -> None:
        store = await self.opened()
        self.assertEqual(store.rooms_at_open(), [])
        await store.save_room(StoredRoom("dev", "alice", created=10))
        await store.save_room(StoredRoom("ops", "bob", created=20))
        # New settings: the owner and the time made stay.
        await store.save_room(
            StoredRoom("dev", "mallory", "Topic \x00 ✓", True, 30, created=99)
        )
        for room, uid in (("dev", "carol"), ("dev", "bob"), ("dev", "carol")):
            await store.save_invite(room, uid)
        await store.save_account_room("carol", "ops", True, 5)
        await store.save_account_room("carol", "dev", True, 6)
        await store.save_account_room("carol", "dev", True, 7)
        await store.save_account_room("bob", "ops", True, 8)
        await store.save_account_room("bob", "ops", False, 9)
        await store.save_account_room("bob", "dev", True, 10)
        await store.close()
        again = await self.opened()
        self.assertEqual(
            again.rooms_at_open(),
            [
                StoredRoom(
                    "dev", "alice", "Topic \x00 ✓", True, 30, 10, ("bob", "carol")
                ),
                StoredRoom("ops", "bob", created=20),
            ],
        )
        self.assertEqual(
            again.account_rooms_at_open(), {"bob": ["dev"], "carol": ["ops", "dev"]}
        )


class SQLiteRoomsTests(SQLiteBackend, RoomsBehaviour, TestCase):
    """Rooms in an SQLite file."""


class PostgresRoomsTests(PostgresBackend, RoomsBehaviour, TestCase):
    """Rooms in a real PostgreSQL database."""
