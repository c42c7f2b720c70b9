"""History per room over loopback TCP, on SQLite and on a real PostgreSQL:
every room's broadcasts kept with their room, ``ENTERED`` followed by the
room's ``LIST`` and replay, ``HISTORY`` with ``ROOM`` (a private room's for
its members only), ``HISTORY`` without it, and the ``JOIN`` replay and
``SINCE`` of a rooms client."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from muca.store.sqlite import SQLiteStore
from tests.support import (
    TIMEOUT,
    MemoryPeer,
    MemoryServer,
    RawClient,
    connect,
    join,
    send,
    start_server,
)
from tests.support import postgres as pgsupport
from tests.support.twistd import fresh_directory

ALICE = ("Alice", "alice@hku.hk")
BOB = ("Bob", "bob@hku.hk")
CAROL = ("Carol", "carol@hku.hk")
AUTH = ("--auth", "memory:alice@hku.hk:a:bob@hku.hk:b:carol@hku.hk:c")
PASSWORDS = {"alice@hku.hk": "a", "bob@hku.hk": "b", "carol@hku.hk": "c"}
#: Newer than any message: HISTORY BEFORE this reads from the newest.
NEWEST = 10**12


def rooms_join(who: tuple[str, str], *caps: str, **extra: Any) -> dict[str, Any]:
    """A ``JOIN`` with rooms and history (and ``caps``), with the password
    the ``AUTH`` servers want."""
    return join(*who, CAPS=["rooms", "history", *caps], PASS=PASSWORDS[who[1]], **extra)


def room_send(text: str, sender: str, room: str) -> dict[str, Any]:
    return {**send(text, [], sender), "ROOM": room}


def history(room: str | None = None, before: int = NEWEST) -> dict[str, Any]:
    """``HISTORY BEFORE``, in ``room`` when given."""
    request: dict[str, Any] = {"CMD": "HISTORY", "BEFORE": before, "LIMIT": 200}
    if room is not None:
        request["ROOM"] = room
    return request


def seen(obj: dict[str, Any]) -> tuple[Any, ...]:
    """What a user sees of an object: a MSG as (MSG, ROOM, HIST), HISTORY
    as (HISTORY, MORE, ROOM), LIST as (LIST, ROOM), anything else by its
    command (and code)."""
    cmd = obj.get("CMD")
    if cmd == "MSG":
        return (obj["MSG"], obj.get("ROOM"), obj.get("HIST", False))
    if cmd == "HISTORY":
        return ("HISTORY", obj["MORE"], obj.get("ROOM"))
    if cmd in ("LIST", "ENTERED"):
        return (cmd, obj.get("ROOM"))
    if cmd == "ERROR":
        return ("ERROR", obj["CODE"], obj.get("REF"))
    return (cmd,)


async def until(client: RawClient, done: Any) -> list[dict[str, Any]]:
    """What ``client`` receives up to and including the first object for
    which ``done`` is true."""
    got = []
    for _ in range(2000):
        obj = await client.next_object()
        got.append(obj)
        if done(obj):
            return got
    raise AssertionError(f"no end in {got!r}")


def marker(obj: dict[str, Any]) -> bool:
    return obj.get("CMD") in ("HISTORY", "ERROR")


class RoomsHistoryMixin:
    """The tests, on the database that :meth:`db` names."""

    def db(self) -> str:
        raise NotImplementedError

    async def server(self, *args: str) -> int:
        return await start_server(self, "--db", self.db(), *args)  # type: ignore[arg-type]

    async def joined(
        self, port: int, who: tuple[str, str], **extra: Any
    ) -> tuple[RawClient, list[dict[str, Any]]]:
        """Connect, JOIN with rooms and history; return the client and what
        came up to its replay's end."""
        client = await connect(self, port)  # type: ignore[arg-type]
        client.send_json(rooms_join(who, **extra))
        return client, await until(client, marker)

    async def entered(self, client: RawClient, room: str) -> list[dict[str, Any]]:
        """ENTER ``room``; what came up to the end of its replay."""
        client.send_json({"CMD": "ENTER", "ROOM": room})
        return await until(client, marker)

    async def stored(self, client: RawClient, room: str | None, count: int) -> None:
        """Wait until ``count`` messages can be read back in ``room`` (the
        store writes them on a thread of its own, and so does delivery)."""
        for _ in range(200):
            client.send_json(history(room))
            page = await until(client, marker)
            if sum(1 for o in page if o.get("HIST")) >= count:
                return
            await deferLater(reactor, 0.05)
        raise AssertionError(f"{count} messages were not stored in {room!r}")

    async def test_entered_then_the_rooms_list_then_its_replay(self) -> None:
        port = await self.server("--history-replay", "2")
        alice, _ = await self.joined(port, ALICE)
        await self.entered(alice, "dev")
        for text in ("d1", "d2", "d3"):
            alice.send_json(room_send(text, ALICE[1], "dev"))
        alice.send_json(send("g1", [], ALICE[1]))
        await self.stored(alice, "dev", 3)
        await self.stored(alice, "general", 1)
        bob, got = await self.joined(port, BOB)
        # The JOIN's replay: the default room's, with its ROOM.
        self.assertEqual(
            [seen(o) for o in got],
            [
                ("ACK",),
                ("ROOMS",),
                ("LIST", "general"),
                ("g1", "general", True),
                ("HISTORY", False, None),
            ],
        )
        got = await self.entered(bob, "dev")
        self.assertEqual(
            [seen(o) for o in got],
            [
                ("ENTERED", "dev"),
                ("ROOMS",),
                ("LIST", "dev"),
                ("d2", "dev", True),
                ("d3", "dev", True),
                ("HISTORY", True, "dev"),
            ],
        )
        self.assertLess(got[3]["ID"], got[4]["ID"])
        self.assertEqual(got[3]["UN"], "Alice")
        # Scrolling back in the room: the older one.
        bob.send_json(history("dev", got[3]["ID"]))
        older = await until(bob, marker)
        self.assertEqual(
            [seen(o) for o in older], [("d1", "dev", True), ("HISTORY", False, "dev")]
        )

    async def test_live_messages_during_a_rooms_replay_come_once_in_order(
        self,
    ) -> None:
        port = await self.server()
        alice, _ = await self.joined(port, ALICE)
        await self.entered(alice, "dev")
        for n in range(20):
            alice.send_json(room_send(f"before {n}", ALICE[1], "dev"))
        await self.stored(alice, "dev", 20)
        bob, _ = await self.joined(port, BOB)
        # Bob enters while Alice goes on talking in the room.
        bob.send_json({"CMD": "ENTER", "ROOM": "dev"})
        for n in range(20):
            alice.send_json(room_send(f"during {n}", ALICE[1], "dev"))
        alice.send_json(room_send("last", ALICE[1], "dev"))
        got = await until(bob, marker)
        if not any(o.get("MSG") == "last" for o in got):
            got += await until(bob, lambda o: o.get("MSG") == "last")
        msgs = [o for o in got if o.get("CMD") == "MSG"]
        ids = [o["ID"] for o in msgs]
        self.assertEqual(ids, sorted(set(ids)), "once each, in id order")
        texts = [o["MSG"] for o in msgs]
        self.assertEqual(
            texts,
            [f"before {n}" for n in range(20)]
            + [f"during {n}" for n in range(20)]
            + ["last"],
        )
        # The replay (what is read back), its end, then what came live.
        end = [seen(o) for o in got].index(("HISTORY", False, "dev"))
        self.assertTrue(all(o.get("HIST") for o in got[3:end]))
        self.assertFalse(any(o.get("HIST") for o in got[end + 1 :]))

    async def test_a_private_rooms_history_is_for_its_members_only(self) -> None:
        port = await self.server()
        alice, _ = await self.joined(port, ALICE)
        await self.entered(alice, "secret")
        alice.send_json({"CMD": "ROOMSET", "ROOM": "secret", "PRIVATE": True})
        alice.send_json(room_send("hush", ALICE[1], "secret"))
        await self.entered(alice, "dev")
        alice.send_json(room_send("open", ALICE[1], "dev"))
        await self.stored(alice, "secret", 1)
        await self.stored(alice, "dev", 1)
        carol, _ = await self.joined(port, CAROL)
        carol.send_json(history("secret"))
        refused = await carol.next_object()
        self.assertEqual(seen(refused), ("ERROR", "NOT_IN_ROOM", "HISTORY"))
        self.assertIn("private", refused["REASON"])
        # Invited is not a member yet.
        alice.send_json({"CMD": "INVITE", "ROOM": "secret", "UID": CAROL[1]})
        for _ in range(100):
            carol.send_json(history("secret"))
            got = await until(carol, lambda o: o["CMD"] == "ERROR")
            self.assertEqual(seen(got[-1]), ("ERROR", "NOT_IN_ROOM", "HISTORY"))
            if any(o["CMD"] == "ROOMS" and len(o["DATA"]) == 3 for o in got):
                break
            await deferLater(reactor, 0.02)
        else:
            self.fail("the invitation did not come")
        # A public room's history is read without entering it.
        carol.send_json(history("dev"))
        self.assertEqual(
            [seen(o) for o in await until(carol, marker) if o["CMD"] != "ROOMS"],
            [("open", "dev", True), ("HISTORY", False, "dev")],
        )
        got = await self.entered(carol, "secret")
        self.assertEqual(
            [seen(o) for o in got if o["CMD"] != "ROOMS"],
            [
                ("ENTERED", "secret"),
                ("LIST", "secret"),
                ("hush", "secret", True),
                ("HISTORY", False, "secret"),
            ],
        )
        carol.send_json(history("secret"))
        self.assertEqual(
            [seen(o) for o in await until(carol, marker) if o["CMD"] != "ROOMS"],
            [("hush", "secret", True), ("HISTORY", False, "secret")],
        )
        # No such room, and no room name at all: one error each.
        carol.send_json(history("nowhere"))
        self.assertEqual(
            seen(await carol.next_object()), ("ERROR", "NO_SUCH_ROOM", "HISTORY")
        )
        carol.send_json(history("no way!"))
        self.assertEqual(
            seen(await carol.next_object()), ("ERROR", "BAD_ROOM", "HISTORY")
        )

    async def test_history_without_room_reads_ones_own_messages(self) -> None:
        port = await self.server(*AUTH)
        alice, _ = await self.joined(port, ALICE)
        bob, _ = await self.joined(port, BOB)
        carol = await connect(self, port)  # type: ignore[arg-type]
        carol.send_json(join(*CAROL, CAPS=["history"], PASS="c"))
        await until(carol, marker)
        await self.entered(alice, "dev")
        alice.send_json(room_send("in dev", ALICE[1], "dev"))
        alice.send_json(send("in general", [], ALICE[1]))
        alice.send_json(send("to bob", [BOB[1]], ALICE[1]))
        alice.send_json(send("to both", [BOB[1], CAROL[1]], ALICE[1]))
        await self.stored(alice, "dev", 1)
        await self.stored(alice, None, 2)
        # A rooms client: its private and group messages alone.
        bob.send_json(history())
        got = await until(bob, marker)
        self.assertEqual(
            [seen(o) for o in got if o.get("HIST") or o["CMD"] == "HISTORY"],
            [("to bob", None, True), ("to both", None, True), ("HISTORY", False, None)],
        )
        # A client without rooms: the default room's too, as before rooms
        # (and a ROOM in its HISTORY is ignored).
        carol.send_json(history("dev"))
        got = await until(carol, marker)
        self.assertEqual(
            [(o["MSG"], o.get("ROOM")) for o in got if o.get("HIST")],
            [("in general", None), ("to both", None)],
        )

    async def test_join_replay_and_since_read_the_default_room_and_own_messages(
        self,
    ) -> None:
        port = await self.server(*AUTH)
        alice, _ = await self.joined(port, ALICE)
        bob, _ = await self.joined(port, BOB)
        await self.entered(alice, "dev")
        alice.send_json(send("g1", [], ALICE[1]))
        alice.send_json(room_send("d1", ALICE[1], "dev"))
        alice.send_json(send("p1", [BOB[1]], ALICE[1]))
        alice.send_json(send("g2", [], ALICE[1]))
        await self.stored(alice, "general", 2)
        await bob.close()
        bob, got = await self.joined(port, BOB)
        texts = [seen(o) for o in got if o["CMD"] == "MSG"]
        self.assertEqual(
            texts,
            [("g1", "general", True), ("p1", None, True), ("g2", "general", True)],
        )
        first = next(o["ID"] for o in got if o.get("MSG") == "g1")
        await bob.close()
        bob, got = await self.joined(port, BOB, SINCE=first)
        self.assertEqual(
            [seen(o) for o in got[3:]],
            [("p1", None, True), ("g2", "general", True), ("HISTORY", False, None)],
        )

    async def test_since_catches_up_every_room_once_in_id_order(self) -> None:
        port = await self.server(*AUTH)
        alice, _ = await self.joined(port, ALICE)
        bob, _ = await self.joined(port, BOB)
        for room in ("dev", "ops", "misc"):
            await self.entered(alice, room)
        for room in ("ops", "dev"):
            await self.entered(bob, room)
        bob.send_json(send("seen", [], BOB[1]))
        seen_id = (await until(alice, lambda o: o.get("MSG") == "seen"))[-1]["ID"]
        await bob.close()
        for obj in (
            room_send("d1", ALICE[1], "dev"),
            send("g1", [], ALICE[1]),
            room_send("m1", ALICE[1], "misc"),
            send("p1", [BOB[1]], ALICE[1]),
            room_send("o1", ALICE[1], "ops"),
            room_send("d2", ALICE[1], "dev"),
        ):
            alice.send_json(obj)
        await self.stored(alice, "dev", 2)
        # Back with SINCE: in its rooms again (its account's), and every
        # message of them and its own since, once each, in id order; not
        # those of a room it is not in.
        bob, got = await self.joined(port, BOB, SINCE=seen_id)
        self.assertEqual(
            [seen(o) for o in got[1:]],
            [
                ("ROOMS",),
                ("LIST", "general"),
                # In the order the rooms were made.
                ("LIST", "dev"),
                ("LIST", "ops"),
                ("d1", "dev", True),
                ("g1", "general", True),
                ("p1", None, True),
                ("o1", "ops", True),
                ("d2", "dev", True),
                ("HISTORY", False, None),
            ],
        )
        ids = [o["ID"] for o in got if o["CMD"] == "MSG"]
        self.assertEqual(ids, sorted(set(ids)))
        self.assertGreater(ids[0], seen_id)


class SQLiteRoomsHistoryTests(RoomsHistoryMixin, TestCase):
    """Rooms' history in an SQLite file."""

    def db(self) -> str:
        return os.path.join(fresh_directory(self), "history.db")


class PostgresRoomsHistoryTests(RoomsHistoryMixin, TestCase):
    """Rooms' history in a real PostgreSQL database."""

    def db(self) -> str:
        return pgsupport.fresh_database(self)


async def take_until(peer: MemoryPeer, done: Any) -> list[dict[str, Any]]:
    """What ``peer`` gets up to the first object for which ``done`` is true
    (the store reads and writes on a thread of its own)."""
    got: list[dict[str, Any]] = []
    for _ in range(int(TIMEOUT * 100)):
        got += peer.take()
        if any(done(o) for o in got):
            return got
        await deferLater(reactor, 0.01)
    raise AssertionError(f"no end in {got!r}")


async def server_on_sqlite(testcase: TestCase) -> MemoryServer:
    """An in-memory server on a fresh SQLite history, closed after the test."""
    store = SQLiteStore(os.path.join(fresh_directory(testcase), "h.db"))
    await store.open()
    testcase.addCleanup(store.close)
    server = MemoryServer(store=store)
    testcase.addCleanup(server.stop)
    return server


class ReplayBehindLiveTests(TestCase):
    """A room's message delivered while the room's replay is read: it comes
    once, in its place (in memory, so that it is delivered before the replay
    is written)."""

    async def test_a_message_delivered_during_the_rooms_replay_comes_once(
        self,
    ) -> None:
        server = await server_on_sqlite(self)
        alice, bob = server.connect(), server.connect()
        alice.send_json(join(*ALICE, CAPS=["rooms"]))
        alice.send_json({"CMD": "ENTER", "ROOM": "dev"})
        alice.send_json(room_send("old", ALICE[1], "dev"))
        bob.send_json(join(*BOB, CAPS=["rooms", "history"]))
        await take_until(bob, marker)
        alice.take()
        # Bob enters, and Alice speaks in the same turn: the message is
        # delivered while Bob's replay waits for its LIST and its pages.
        bob.send_json({"CMD": "ENTER", "ROOM": "dev"})
        alice.send_json(room_send("new", ALICE[1], "dev"))
        alice.send_json(send("psst", [BOB[1]], ALICE[1]))
        self.assertEqual(len(server.factory.replays._replays[bob.protocol.member]), 1)
        got = await take_until(bob, lambda o: o.get("MSG") == "psst")
        got += bob.take()
        start = [
            ("ENTERED", "dev"),
            ("ROOMS",),
            ("LIST", "dev"),
            ("old", "dev", True),
        ]
        # "new" was stored before the replay was read or after: in the
        # replay or behind it, once either way.
        self.assertIn(
            [seen(o) for o in got],
            [
                [
                    *start,
                    ("new", "dev", True),
                    ("HISTORY", False, "dev"),
                    ("psst", None, False),
                ],
                [
                    *start,
                    ("HISTORY", False, "dev"),
                    ("new", "dev", False),
                    ("psst", None, False),
                ],
            ],
        )
        self.assertEqual(server.factory.replays._replays, {})

    async def test_what_one_says_while_ones_replay_waits_is_not_replayed(
        self,
    ) -> None:
        server = await server_on_sqlite(self)
        alice, bob = server.connect(), server.connect()
        alice.send_json(join(*ALICE, CAPS=["rooms"]))
        alice.send_json({"CMD": "ENTER", "ROOM": "dev"})
        alice.send_json(room_send("old", ALICE[1], "dev"))
        await take_until(alice, lambda o: o.get("CMD") == "LIST")
        # Bob joins, enters and speaks in one read: the room's replay waits
        # behind his JOIN's (for his first LIST), so his words are stored
        # before it is read. He sent them: they are not shown to him again
        # as history. Alice gets them live.
        bob.send(
            b"".join(
                json.dumps(obj).encode() + b"\n"
                for obj in (
                    join(*BOB, CAPS=["rooms", "history"]),
                    {"CMD": "ENTER", "ROOM": "dev"},
                    room_send("mine", BOB[1], "dev"),
                )
            )
        )
        got = await take_until(bob, lambda o: marker(o) and o.get("ROOM") == "dev")
        self.assertEqual(
            [seen(o) for o in got if o.get("CMD") in ("MSG", "HISTORY", "ERROR")],
            [("HISTORY", False, None), ("old", "dev", True), ("HISTORY", False, "dev")],
        )
        heard = await take_until(alice, lambda o: o.get("MSG") == "mine")
        self.assertEqual(seen(heard[-1]), ("mine", "dev", False))
        # Read back later, it is there like any other.
        bob.send_json(history("dev"))
        page = await take_until(bob, lambda o: marker(o) and o.get("ROOM") == "dev")
        self.assertEqual(
            [seen(o) for o in page],
            [("old", "dev", True), ("mine", "dev", True), ("HISTORY", False, "dev")],
        )

    async def test_rooms_entered_at_once_are_replayed_one_after_another(
        self,
    ) -> None:
        server = await server_on_sqlite(self)
        alice, bob = server.connect(), server.connect()
        alice.send_json(join(*ALICE, CAPS=["rooms"]))
        for room in ("a", "b", "c"):
            alice.send_json({"CMD": "ENTER", "ROOM": room})
            alice.send_json(room_send(f"in {room}", ALICE[1], room))
        bob.send_json(join(*BOB, CAPS=["rooms", "history"]))
        await take_until(bob, marker)
        # Three ENTERs in one read: each room's replay after the one before.
        bob.send(
            b"".join(
                b'{"CMD": "ENTER", "ROOM": "%s"}\n' % room.encode()
                for room in ("c", "a", "b")
            )
        )
        got = await take_until(bob, lambda o: o.get("ROOM") == "b" and marker(o))
        self.assertEqual(
            [seen(o) for o in got],
            [
                ("ENTERED", "c"),
                ("ENTERED", "a"),
                ("ENTERED", "b"),
                ("ROOMS",),
                ("LIST", "a"),
                ("LIST", "b"),
                ("LIST", "c"),
                ("in c", "c", True),
                ("HISTORY", False, "c"),
                ("in a", "a", True),
                ("HISTORY", False, "a"),
                ("in b", "b", True),
                ("HISTORY", False, "b"),
            ],
        )
        self.assertEqual(server.factory.replays._replays, {})
