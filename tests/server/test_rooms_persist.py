"""Rooms kept in the database with a real ``twistd -n muca``, on SQLite and a
real PostgreSQL: the rooms, their settings (topic, private, slow mode) and
invitations survive a ``kill -9`` and a clean restart, and with ``--auth``
each account's rooms are entered again at its next ``JOIN`` (and its replay
covers them); without ``--auth`` a connection starts in the default room;
with ``--db none`` rooms live as long as the process."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Callable
from typing import Any

import psycopg
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support import RawClient, connect, join, send
from tests.support import postgres as pgsupport
from tests.support.twistd import fresh_directory, start_twistd

ALICE = ("Alice", "alice@hku.hk")
BOB = ("Bob", "bob@hku.hk")
CAROL = ("Carol", "carol@hku.hk")
AUTH = ("--auth", "memory:alice@hku.hk:a:bob@hku.hk:b:carol@hku.hk:c")
PASSWORDS = {"alice@hku.hk": "a", "bob@hku.hk": "b", "carol@hku.hk": "c"}


def rooms_join(who: tuple[str, str], *caps: str) -> dict[str, Any]:
    """A ``JOIN`` with rooms (and ``caps``), with the password ``AUTH`` wants."""
    return join(*who, CAPS=["rooms", *caps], PASS=PASSWORDS[who[1]])


async def until(client: RawClient, done: Callable[[dict[str, Any]], bool]) -> list:
    """What ``client`` receives up to the first object ``done`` is true of."""
    got = []
    for _ in range(500):
        obj = await client.next_object()
        got.append(obj)
        if done(obj):
            return got
    raise AssertionError(f"no end in {got!r}")


def cmd(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: obj.get("CMD") == name


def rooms_shown(objs: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """The last ``ROOMS`` among ``objs``, as (room, topic, in) entries."""
    listing = [o for o in objs if o.get("CMD") == "ROOMS"][-1]
    return [(r["ROOM"], r["TOPIC"], r["IN"]) for r in listing["DATA"]]


class RoomsPersistMixin:
    """The tests, on the database that :meth:`db` names."""

    def db(self) -> str:
        raise NotImplementedError

    def read(self, database: str, query: str) -> list[tuple[Any, ...]]:
        """Rows of ``query``, read from the server's database beside it."""
        if database.endswith(".db"):
            with sqlite3.connect(database) as conn:
                return conn.execute(query).fetchall()
        with psycopg.connect(database) as conn:
            rows = conn.execute(query).fetchall()
        # PostgreSQL keeps text as bytes (a NUL is allowed in it).
        return [
            tuple(
                bytes(v).decode() if isinstance(v, bytes | memoryview) else v
                for v in row
            )
            for row in rows
        ]

    async def kept(
        self, database: str, query: str, expected: list[tuple[Any, ...]]
    ) -> None:
        """Wait until ``query`` reads ``expected``: a room's change is saved
        after its answer."""
        rows: list[tuple[Any, ...]] = []
        for _ in range(200):
            rows = self.read(database, query)
            if rows == expected:
                return
            await deferLater(reactor, 0.05)
        self.assertEqual(rows, expected)  # type: ignore[attr-defined]

    async def joined(
        self, port: int, who: tuple[str, str], *caps: str
    ) -> tuple[RawClient, list[dict[str, Any]]]:
        """Join with rooms; what came up to its default room's ``LIST``
        (its replay's end, with ``history``)."""
        client = await connect(self, port)  # type: ignore[arg-type]
        client.send_json(rooms_join(who, *caps))
        if "history" in caps:
            return client, await until(client, cmd("HISTORY"))
        end = lambda o: o.get("CMD") == "LIST" and o["ROOM"] == "general"  # noqa: E731
        return client, await until(client, end)

    async def test_rooms_settings_invites_and_accounts_survive_kill_and_restart(
        self,
    ) -> None:
        database = self.db()
        server = await start_twistd(self, "--db", database, *AUTH)  # type: ignore[arg-type]
        alice, _ = await self.joined(server.port, ALICE)
        for obj in (
            {"CMD": "ENTER", "ROOM": "dev"},
            {"CMD": "ROOMSET", "ROOM": "dev", "TOPIC": "Dev talk ✓"},
            {"CMD": "ENTER", "ROOM": "secret"},
            {"CMD": "ROOMSET", "ROOM": "secret", "PRIVATE": True, "SLOW": 5},
            {"CMD": "INVITE", "ROOM": "secret", "UID": BOB[1]},
            {**send("kept?", [], ALICE[1]), "ROOM": "dev"},
        ):
            alice.send_json(obj)
        bob, _ = await self.joined(server.port, BOB, "history")
        bob.send_json({"CMD": "ENTER", "ROOM": "#DEV"})
        await until(bob, lambda o: o.get("MSG") == "kept?")
        await self.kept(
            database,
            "SELECT name, owner, topic, private, slow FROM muca_rooms ORDER BY name",
            [
                ("dev", ALICE[1], "Dev talk ✓", 0, 0),
                ("secret", ALICE[1], "", 1, 5),
            ],
        )
        await self.kept(
            database, "SELECT room, uid FROM muca_room_invites", [("secret", BOB[1])]
        )
        await self.kept(
            database,
            "SELECT uid, room FROM muca_account_rooms ORDER BY uid, room",
            [(ALICE[1], "dev"), (ALICE[1], "secret"), (BOB[1], "dev")],
        )
        os.kill(server.pid, signal.SIGKILL)
        await server.process.ended()

        again = await start_twistd(self, "--db", database, *AUTH)  # type: ignore[arg-type]
        # Carol, never in a room: the public ones, their topics; not the
        # private one, which she may not enter.
        carol, got = await self.joined(again.port, CAROL)
        self.assertEqual(
            rooms_shown(got),
            [("general", "", True), ("dev", "Dev talk ✓", False)],
        )
        carol.send_json({"CMD": "ENTER", "ROOM": "secret"})
        refused = await until(carol, cmd("ERROR"))
        self.assertEqual(refused[-1]["CODE"], "INVITE_ONLY")
        # Bob: in dev again, without asking, and its replay covers it; the
        # private room shown, as he is invited.
        bob, got = await self.joined(again.port, BOB, "history")
        self.assertEqual(
            rooms_shown(got),
            [("general", "", True), ("dev", "Dev talk ✓", True), ("secret", "", False)],
        )
        self.assertEqual(
            [(o["CMD"], o.get("ROOM"), o.get("MSG")) for o in got[1:]],
            [
                ("ROOMS", None, None),
                ("LIST", "general", None),
                ("LIST", "dev", None),
                ("MSG", "dev", "kept?"),
                ("HISTORY", None, None),
            ],
        )
        bob.send_json({"CMD": "ENTER", "ROOM": "secret"})
        self.assertEqual((await until(bob, cmd("ENTERED")))[-1]["ROOM"], "secret")
        # Alice still owns dev: Bob may not set it.
        bob.send_json({"CMD": "ROOMSET", "ROOM": "dev", "TOPIC": "mine"})
        refused = await until(bob, cmd("ERROR"))
        self.assertEqual(
            (refused[-1]["CODE"], refused[-1]["REF"]), ("NOT_ALLOWED", "ROOMSET")
        )
        alice, got = await self.joined(again.port, ALICE)
        self.assertEqual(
            rooms_shown(got),
            [("general", "", True), ("dev", "Dev talk ✓", True), ("secret", "", True)],
        )
        alice.send_json({"CMD": "ROOMSET", "ROOM": "dev", "TOPIC": "Dev, again"})
        bob.send_json({"CMD": "EXIT", "ROOM": "dev"})
        await self.kept(
            database,
            f"SELECT room FROM muca_account_rooms WHERE uid = '{BOB[1]}' ORDER BY room",
            [("secret",)],
        )
        await self.kept(
            database,
            "SELECT topic FROM muca_rooms WHERE name = 'dev'",
            [("Dev, again",)],
        )
        again.terminate()
        await again.process.ended()

        third = await start_twistd(self, "--db", database, *AUTH)  # type: ignore[arg-type]
        bob, got = await self.joined(third.port, BOB)
        self.assertEqual(
            rooms_shown(got),
            [("general", "", True), ("dev", "Dev, again", False), ("secret", "", True)],
        )

    async def test_without_auth_a_connection_starts_in_the_default_room(
        self,
    ) -> None:
        database = self.db()
        server = await start_twistd(self, "--db", database)  # type: ignore[arg-type]
        alice, _ = await self.joined(server.port, ALICE)
        alice.send_json({"CMD": "ENTER", "ROOM": "dev"})
        await until(alice, cmd("ENTERED"))
        await self.kept(database, "SELECT name FROM muca_rooms", [("dev",)])
        # Nobody's rooms are kept without --auth: a user id proves nothing.
        self.assertEqual(self.read(database, "SELECT * FROM muca_account_rooms"), [])
        await alice.close()
        server.terminate()
        await server.process.ended()
        again = await start_twistd(self, "--db", database)  # type: ignore[arg-type]
        _, got = await self.joined(again.port, ALICE)
        self.assertEqual(rooms_shown(got), [("general", "", True), ("dev", "", False)])


class SQLiteRoomsPersistTests(RoomsPersistMixin, TestCase):
    """Rooms kept in an SQLite file."""

    def db(self) -> str:
        return os.path.join(fresh_directory(self), "rooms.db")


class PostgresRoomsPersistTests(RoomsPersistMixin, TestCase):
    """Rooms kept in a real PostgreSQL database."""

    def db(self) -> str:
        return pgsupport.fresh_database(self)


class NoDatabaseTests(TestCase):
    """``--db none``: rooms live as long as the process."""

    async def test_rooms_are_gone_after_a_restart(self) -> None:
        server = await start_twistd(self, "--db", "none")
        alice = await connect(self, server.port)
        alice.send_json(join(*ALICE, CAPS=["rooms"]))
        alice.send_json({"CMD": "ENTER", "ROOM": "dev"})
        await until(alice, cmd("ENTERED"))
        await alice.close()
        # The room stays while the server runs, empty.
        bob = await connect(self, server.port)
        bob.send_json(join(*BOB, CAPS=["rooms"]))
        got = await until(bob, cmd("ROOMS"))
        self.assertEqual(rooms_shown(got), [("general", "", True), ("dev", "", False)])
        server.terminate()
        await server.process.ended()
        again = await start_twistd(self, "--db", "none")
        bob = await connect(self, again.port)
        bob.send_json(join(*BOB, CAPS=["rooms"]))
        got = await until(bob, cmd("ROOMS"))
        self.assertEqual(rooms_shown(got), [("general", "", True)])
