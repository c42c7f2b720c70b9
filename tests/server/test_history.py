"""History end to end over loopback TCP, on SQLite and on a real PostgreSQL:
replay at JOIN, SINCE, HISTORY BEFORE and MORE, who may read what, offline
delivery, a replay racing with live messages, and a database failing at
runtime (ERROR STORE_UNAVAILABLE, then recovery)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from muca.protocol.messages import ChatMessage
from muca.server.bus import LocalBus
from muca.store.sqlite import SQLiteStore
from tests.support import (
    OKAY,
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
AUTH = (
    "--auth",
    "memory:alice@hku.hk:a:bob@hku.hk:b:carol@hku.hk:c",
)
PASSWORDS = {"alice@hku.hk": "a", "bob@hku.hk": "b", "carol@hku.hk": "c"}


def history_join(who: tuple[str, str], **extra: Any) -> dict[str, Any]:
    """A JOIN asking for the history (with the password the AUTH servers want)."""
    return join(*who, CAPS=["history"], PASS=PASSWORDS[who[1]], **extra)


def plain(obj: dict[str, Any]) -> tuple[Any, ...]:
    """A MSG as (ID, TYPE, MSG, FROM, HIST); anything else as it is."""
    if obj.get("CMD") != "MSG":
        return (obj.get("CMD"), obj.get("MORE", obj.get("CODE")))
    return (obj["ID"], obj["TYPE"], obj["MSG"], obj["FROM"], obj.get("HIST", False))


class HistoryTestsMixin:
    """The tests, on the database that :meth:`db` names."""

    def db(self) -> str:
        raise NotImplementedError

    async def server(self, *args: str) -> int:
        return await start_server(self, "--db", self.database, *args)

    def setUp(self) -> None:
        self.database = self.db()

    async def joined(
        self, port: int, who: tuple[str, str], **extra: Any
    ) -> tuple[RawClient, list[dict[str, Any]]]:
        """Connect and JOIN with the history; return the client and what came
        up to and including its HISTORY marker."""
        client = await connect(self, port)
        client.send_json(history_join(who, **extra))
        received = []
        for _ in range(1100):
            obj = await client.next_object()
            received.append(obj)
            if obj.get("CMD") in ("HISTORY", "ERROR") or obj.get("TYPE") == "FAIL":
                break
        return client, received

    async def talk(self, port: int, sends: list[dict[str, Any]]) -> None:
        """Alice says each of ``sends``; wait until they are all stored (her
        own HISTORY BEFORE finds them)."""
        alice, _ = await self.joined(port, ALICE)
        for obj in sends:
            alice.send_json(obj)
        for _ in range(100):
            alice.send_json({"CMD": "HISTORY", "BEFORE": 10**12, "LIMIT": 200})
            page = await until_marker(alice)
            if len(page) - 1 >= len(sends):
                await alice.close()
                return
            await deferLater(reactor, 0.05)
        self.fail("the messages were not stored")

    async def test_replay_after_ack_and_list_then_history_marker(self) -> None:
        port = await self.server("--history-replay", "2", *AUTH)
        await self.talk(port, [send(f"m{i}", [], ALICE[1]) for i in range(1, 4)])
        bob, got = await self.joined(port, BOB)
        self.assertEqual(got[0], OKAY)
        self.assertEqual(got[1]["CMD"], "LIST")
        msgs = [plain(o) for o in got[2:]]
        self.assertEqual(
            [m[1:] for m in msgs[:-1]],
            [("ALL", "m2", ALICE[1], True), ("ALL", "m3", ALICE[1], True)],
        )
        self.assertLess(msgs[0][0], msgs[1][0])
        self.assertEqual(msgs[-1], ("HISTORY", True))
        # Scroll back from the oldest replayed: m1, and nothing older.
        bob.send_json({"CMD": "HISTORY", "BEFORE": msgs[0][0], "LIMIT": 200})
        older = [plain(o) for o in await bob.next_objects(2)]
        self.assertEqual(older[0][1:], ("ALL", "m1", ALICE[1], True))
        self.assertEqual(older[1], ("HISTORY", False))
        # SINCE the first: the two later ones.
        again, got = await self.joined(port, ALICE, SINCE=older[0][0])
        self.assertEqual(
            [plain(o)[2] for o in got[2:-1]] + [plain(got[-1])],
            ["m2", "m3", ("HISTORY", False)],
        )

    async def test_bad_history_requests_get_bad_command(self) -> None:
        port = await self.server()
        bob, _ = await self.joined(port, BOB)
        bob.send_json({"CMD": "HISTORY", "BEFORE": 5, "LIMIT": 500})
        error = await bob.next_object()
        self.assertEqual(
            (error["CMD"], error["CODE"], error["REF"]),
            ("ERROR", "BAD_COMMAND", "HISTORY"),
        )
        self.assertIn("from 1 to 200", error["REASON"])
        stranger = await connect(self, port)
        stranger.send_json({"CMD": "HISTORY", "BEFORE": 5})
        self.assertEqual((await stranger.next_object())["CODE"], "NOT_JOINED")

    async def test_ids_beyond_64_bits_are_refused_not_a_store_failure(self) -> None:
        port = await self.server()
        bob, _ = await self.joined(port, BOB)
        for before in (2**63, 2**64 + 1):
            bob.send_json({"CMD": "HISTORY", "BEFORE": before, "LIMIT": 5})
            error = await bob.next_object()
            self.assertEqual(
                (error["CMD"], error["CODE"], error["REF"], error["REASON"]),
                (
                    "ERROR",
                    "BAD_COMMAND",
                    "HISTORY",
                    "BEFORE is out of range: message ids are below 2**63",
                ),
            )
        # The largest id there can be is a valid question.
        bob.send_json({"CMD": "HISTORY", "BEFORE": 2**63 - 1, "LIMIT": 5})
        self.assertEqual(await bob.next_object(), {"CMD": "HISTORY", "MORE": False})
        late = await connect(self, port)
        late.send_json(history_join(CAROL, SINCE=2**63))
        ack = await late.next_object()
        self.assertEqual(
            (ack["TYPE"], ack["CODE"], ack["REASON"]),
            ("FAIL", "BAD_JOIN", "SINCE is out of range: message ids are below 2**63"),
        )

    async def test_original_clients_get_no_history(self) -> None:
        port = await self.server()
        await self.talk(port, [send("before", [], ALICE[1])])
        old = await connect(self, port)
        old.send_json(join(*BOB))
        self.assertEqual((await old.next_objects(2))[0], OKAY)
        # A history client joins after it and gets its replay; then a live
        # message to the old client, which would wait behind a replay of its
        # own: up to it, the old client got roster updates only.
        carol, got = await self.joined(port, CAROL)
        self.assertIn("before", [o.get("MSG") for o in got])
        carol.send_json(send("marker", [BOB[1]], CAROL[1]))
        while (obj := await old.next_object())["CMD"] == "LIST":
            pass
        self.assertEqual((obj["CMD"], obj["MSG"]), ("MSG", "marker"))
        self.assertNotIn("HIST", obj)

    async def test_private_messages_are_read_back_only_by_their_ids_with_auth(
        self,
    ) -> None:
        port = await self.server(*AUTH)
        alice, _ = await self.joined(port, ALICE)
        bob, _ = await self.joined(port, BOB)
        carol, _ = await self.joined(port, CAROL)
        alice.send_json(send("for bob", [BOB[1]], ALICE[1]))
        alice.send_json(send("for all", [], ALICE[1]))
        self.assertEqual(len(await bob.next_objects(2)), 2)
        for client in (alice, bob, carol):
            await client.close()
        seen = {}
        for who in (ALICE, BOB, CAROL):
            client, got = await self.joined(port, who)
            seen[who[1]] = [plain(o)[2] for o in got if o.get("CMD") == "MSG"]
            await client.close()
        self.assertEqual(seen[ALICE[1]], ["for bob", "for all"])
        self.assertEqual(seen[BOB[1]], ["for bob", "for all"])
        self.assertEqual(seen[CAROL[1]], ["for all"])

    async def test_without_auth_nobody_reads_private_messages_back(self) -> None:
        port = await self.server()
        alice, _ = await self.joined(port, ALICE)
        bob, _ = await self.joined(port, BOB)
        alice.send_json(send("secret", [BOB[1]], ALICE[1]))
        alice.send_json(send("group", [BOB[1], CAROL[1]], ALICE[1]))
        alice.send_json(send("public", [], ALICE[1]))
        received = [o for o in await bob.next_objects(3) if o["CMD"] == "MSG"]
        self.assertEqual([o["MSG"] for o in received], ["secret", "group", "public"])
        await bob.close()
        for who in (BOB, CAROL):
            client, got = await self.joined(port, who)
            texts = [plain(o)[2] for o in got if o.get("CMD") == "MSG"]
            self.assertEqual(texts, ["public"], who)
            await client.close()

    async def test_offline_delivery_with_auth(self) -> None:
        port = await self.server(*AUTH)
        bob, _ = await self.joined(port, BOB)
        await bob.close()
        alice, _ = await self.joined(port, ALICE)
        alice.send_json(send("while you were out", [BOB[1]], ALICE[1]))
        alice.send_json(send("to a stranger", ["nobody@x"], ALICE[1]))
        error = await alice.next_object()
        # Only the id that never joined is unknown.
        self.assertEqual(error["CODE"], "UNKNOWN_RECIPIENT")
        self.assertIn("nobody@x", error["REASON"])
        self.assertNotIn(BOB[1], error["REASON"])
        for _ in range(100):
            bob, got = await self.joined(port, BOB)
            texts = [plain(o)[1:3] for o in got if o.get("CMD") == "MSG"]
            if texts:
                break
            await bob.close()
            await deferLater(reactor, 0.05)
        self.assertEqual(texts, [("PRIVATE", "while you were out")])

    async def test_offline_recipient_unknown_without_auth(self) -> None:
        port = await self.server()
        bob, _ = await self.joined(port, BOB)
        await bob.close()
        alice, _ = await self.joined(port, ALICE)
        alice.send_json(send("hello?", [BOB[1]], ALICE[1]))
        self.assertEqual((await alice.next_object())["CODE"], "UNKNOWN_RECIPIENT")

    async def test_replay_racing_with_live_messages(self) -> None:
        """Messages sent while a newcomer's replay is read reach it once
        each, after the replay, with ids increasing throughout."""
        port = await self.server("--history-replay", "200", "--rate-limit", "0")
        alice, _ = await self.joined(port, ALICE)
        for i in range(40):
            alice.send_json(send(f"early {i}", [], ALICE[1]))
        bob = await connect(self, port)
        bob.send_json(history_join(BOB))
        for i in range(60):
            alice.send_json(send(f"late {i}", [], ALICE[1]))
            if i % 10 == 0:
                await deferLater(reactor, 0.001)
        got = []
        for _ in range(200):
            obj = await bob.next_object()
            got.append(obj)
            seen = {o.get("MSG") for o in got} | {o["CMD"] for o in got}
            if {"late 59", "HISTORY"} <= seen:
                break
        msgs = [o for o in got if o["CMD"] == "MSG"]
        ids = [o["ID"] for o in msgs]
        self.assertEqual(ids, sorted(set(ids)))
        self.assertEqual(
            [o["MSG"] for o in msgs],
            [f"early {i}" for i in range(40)] + [f"late {i}" for i in range(60)],
        )
        commands = [o["CMD"] for o in got]
        self.assertEqual(commands[:2], ["ACK", "LIST"])
        self.assertEqual(commands.count("HISTORY"), 1)
        marker = commands.index("HISTORY")
        self.assertTrue(all(o.get("HIST") for o in got[2:marker]))
        self.assertFalse(any(o.get("HIST") for o in got[marker + 1 :]))


class SQLiteHistoryTests(HistoryTestsMixin, TestCase):
    """History in an SQLite file."""

    def db(self) -> str:
        return os.path.join(fresh_directory(self), "history.db")


class PostgresHistoryTests(HistoryTestsMixin, TestCase):
    """History in a real PostgreSQL database."""

    def db(self) -> str:
        return pgsupport.fresh_database(self)


class StoreFailureTests(TestCase):
    """A database that fails while the server runs: the server refuses the
    messages it cannot store, then recovers by itself."""

    async def test_postgres_stopped_then_started_again(self) -> None:
        server = pgsupport.private_server(self)
        logged: list[str] = []
        failures: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace") == "muca.server.bus":
                logged.append(formatEvent(event))
            if "log_failure" in event:
                failures.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        port = await start_server(self, "--db", server.conninfo())
        alice = await connect(self, port)
        alice.send_json(join(*ALICE))
        await alice.next_objects(2)
        bob = await connect(self, port)
        bob.send_json(join(*BOB))
        await bob.next_objects(2)
        await alice.next_object()
        alice.send_json(send("stored", [], ALICE[1]))
        self.assertEqual((await bob.next_object())["MSG"], "stored")
        pgsupport.stop(server)
        alice.send_json(send("lost?", [], ALICE[1]))
        error = await alice.next_object(timeout=30)
        self.assertEqual(
            (error["CMD"], error["CODE"], error["REF"]),
            ("ERROR", "STORE_UNAVAILABLE", "SEND"),
        )
        pgsupport.start(server)
        for attempt in range(100):
            alice.send_json(send(f"again {attempt}", [], ALICE[1]))
            for _ in range(600):
                if alice.pending() or bob.pending():
                    break
                await deferLater(reactor, 0.05)
            if bob.pending():
                self.assertEqual((await bob.next_object())["MSG"], f"again {attempt}")
                break
            answer = await alice.next_object()
            self.assertEqual(answer["CODE"], "STORE_UNAVAILABLE")
            await deferLater(reactor, 0.1)
        else:
            self.fail("the server did not recover")
        # What was refused was never delivered: it would have come before the
        # later message Bob just got.
        self.assertFalse(any(o.get("MSG") == "lost?" for o in bob.objects))
        # The outage is logged once, however many messages it refused, and
        # so is the recovery.
        self.assertEqual(len(logged), 2, logged)
        self.assertIn("cannot store messages", logged[0])
        self.assertIn("works again", logged[1])
        # No traceback: adbapi's "Rollback failed" of the broken connection
        # is not logged (issue 18: it was, twice per outage).
        self.assertEqual(failures, [])


async def until_marker(client: RawClient) -> list[dict[str, Any]]:
    """What ``client`` receives up to and including a HISTORY marker."""
    received = []
    for _ in range(1100):
        obj = await client.next_object()
        received.append(obj)
        if obj.get("CMD") == "HISTORY":
            break
    return received


class ReplayBookkeepingTests(TestCase):
    """A newcomer that leaves before its replay is written leaves nothing
    behind (live messages would otherwise be held for it for ever)."""

    async def test_leaving_before_the_replay_forgets_it(self) -> None:
        store = SQLiteStore(os.path.join(fresh_directory(self), "h.db"))
        await store.open()
        self.addCleanup(store.close)
        server = MemoryServer(store=store)
        newcomer = server.connect()
        newcomer.send_json(history_join(BOB))
        # ACK is out; the LIST (end of this turn) and the replay are not.
        self.assertEqual(len(server.factory.replays._replays), 1)
        newcomer.lose()
        server.clock.advance(0)
        self.assertEqual(server.factory.replays._replays, {})
        server.stop()

    async def test_a_message_replayed_before_its_delivery_is_written_once(
        self,
    ) -> None:
        # In a cluster the shared store has a message before this node's bus
        # delivers it: the newcomer's replay has it, and the late delivery
        # must not write it again.
        store = SQLiteStore(os.path.join(fresh_directory(self), "h.db"))
        await store.open()
        self.addCleanup(store.close)
        early = ChatMessage(1, 1_700_000_000_000, ALICE[1], "ALL", (), "early")
        await store.append([early])
        server = MemoryServer(store=store, bus=LocalBus(reactor))
        newcomer = server.connect()
        newcomer.send_json(history_join(BOB))
        got: list[Any] = []
        for _ in range(500):
            got += newcomer.take()
            if got and got[-1].get("CMD") == "HISTORY":
                break
            await deferLater(reactor, 0.01)
        self.assertEqual(
            [plain(o) for o in got[2:]][0], (1, "ALL", "early", ALICE[1], True)
        )
        server.factory.deliver([early])
        later = dataclasses.replace(early, id=2, text="later")
        server.factory.deliver([later])
        self.assertEqual(
            [plain(o) for o in newcomer.take()], [(2, "ALL", "later", ALICE[1], False)]
        )
        self.assertEqual(server.factory.replays._replayed, {})
        server.stop()
