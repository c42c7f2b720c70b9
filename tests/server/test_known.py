"""Who sent what, and who is away, as a client reads it back: a replayed
``MSG`` carries the sender's nickname then (``UN``), and a client joining
with the ``known`` capability gets ``KNOWN``, the known users who are away,
after its first ``LIST``; real servers over loopback, on SQLite and on a
real PostgreSQL, with and without ``--auth``, across a restart."""

from __future__ import annotations

import os
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from muca.service import tap
from tests.support import RawClient, connect, join, send, start_server
from tests.support import postgres as pgsupport
from tests.support.twistd import fresh_directory

ALICE = ("Alice", "alice@hku.hk")
BOB = ("Bob", "bob@hku.hk")
CAROL = ("Carol", "carol@hku.hk")
DAVE = ("Dave", "dave@hku.hk")
WATCH = ("Watch", "watch@hku.hk")
PASSWORDS = {u: u[0] for _, u in (ALICE, BOB, CAROL, DAVE, WATCH)}
AUTH = ("--auth", "memory:" + ":".join(f"{u}:{p}" for u, p in PASSWORDS.items()))


def join_as(who: tuple[str, str], **extra: Any) -> dict[str, Any]:
    """A version 2 JOIN of ``who`` with its password."""
    return join(*who, V=2, PASS=PASSWORDS[who[1]], **extra)


def entry(who: tuple[str, str]) -> dict[str, str]:
    return {"UN": who[0], "UID": who[1]}


class KnownTestsMixin:
    """The tests, on the database that :meth:`db` names."""

    def db(self) -> str:
        raise NotImplementedError

    def setUp(self) -> None:
        self.database = self.db()
        self.watch: RawClient | None = None

    async def server(self, *args: str) -> int:
        port = await start_server(self, "--db", self.database, *args)
        if "--auth" in args:
            await self.start_watching(port)
        return port

    async def start_watching(self, port: int) -> None:
        """Join Watch, who sees every join and leave in its LISTs: a leave
        is done (and its time recorded) once Watch's LIST lacks the user."""
        self.watch = await connect(self, port)
        self.watch.send_json(join_as(WATCH))
        await self.watch.next_objects(2)

    async def watched(self, uid: str, present: bool) -> None:
        """Wait until Watch's LIST shows ``uid`` ``present`` or not."""
        if self.watch is None:
            return
        for _ in range(500):
            obj = await self.watch.next_object()
            if obj.get("CMD") == "LIST":
                if any(e["UID"] == uid for e in obj["DATA"]) == present:
                    return
        self.fail(f"Watch never saw {uid} {'join' if present else 'leave'}")

    async def joined(
        self, port: int, who: tuple[str, str], **extra: Any
    ) -> tuple[RawClient, list[dict[str, Any]]]:
        """Join; return the client and what came up to its first LIST, and
        KNOWN and the history after it when asked for."""
        client = await connect(self, port)
        client.send_json(join_as(who, **extra))
        got = await client.next_objects(2)
        self.assertEqual([o["CMD"] for o in got], ["ACK", "LIST"], got)
        caps = extra.get("CAPS", [])
        if "known" in caps:
            got.append(await client.next_object())
        if "history" in caps:
            for _ in range(100):
                got.append(await client.next_object())
                if got[-1]["CMD"] == "HISTORY":
                    break
        await self.watched(who[1], True)
        return client, got

    async def visit(self, port: int, who: tuple[str, str], says: str = "") -> None:
        """``who`` joins, says ``says`` to everyone (if anything) and leaves;
        back once its leave is done (a second join with its id is taken)."""
        client, _ = await self.joined(port, who, CAPS=["history"])
        if says:
            client.send_json(send(says, [], who[1]))
            # Stored once its own scroll-back finds it.
            for _ in range(50):
                client.send_json({"CMD": "HISTORY", "BEFORE": 10**12, "LIMIT": 1})
                page = await until_history(client)
                if any(o.get("MSG") == says for o in page):
                    break
        await self.leave(port, client, who)

    async def leave(self, port: int, client: RawClient, who: tuple[str, str]) -> None:
        """Close ``who``'s connection; back once the server has taken its
        leave (Watch saw it)."""
        await client.close()
        await self.watched(who[1], False)

    async def test_a_departed_senders_nickname_comes_with_its_messages(self) -> None:
        port = await self.server(*AUTH)
        await self.visit(port, CAROL, "hello from Carol")
        alice, got = await self.joined(port, ALICE, CAPS=["history"])
        replayed = [o for o in got if o["CMD"] == "MSG"]
        self.assertEqual(
            [(o["MSG"], o["FROM"], o["UN"], o["HIST"]) for o in replayed],
            [("hello from Carol", CAROL[1], "Carol", True)],
        )
        # Scrolled back and caught up with SINCE: the same.
        alice.send_json({"CMD": "HISTORY", "BEFORE": 10**12, "LIMIT": 10})
        (old, _) = await until_history(alice)
        self.assertEqual((old["MSG"], old["UN"]), ("hello from Carol", "Carol"))
        _, got = await self.joined(port, BOB, CAPS=["history"], SINCE=0)
        self.assertEqual([o.get("UN") for o in got[2:]], ["Carol", None])
        # A live MSG is unchanged: no UN.
        dave, _ = await self.joined(port, DAVE)
        alice.send_json(send("live", [DAVE[1]], ALICE[1]))
        live = await dave.next_object()
        self.assertEqual(set(live), {"CMD", "TYPE", "MSG", "FROM", "TS", "ID"}, live)

    async def test_known_lists_who_is_away_after_the_first_list(self) -> None:
        port = await self.server(*AUTH)
        await self.visit(port, CAROL, "one")
        await self.visit(port, DAVE)
        await self.joined(port, BOB)
        alice, got = await self.joined(port, ALICE, CAPS=["known", "history"])
        self.assertEqual([o["CMD"] for o in got[:3]], ["ACK", "LIST", "KNOWN"])
        # Away only (Bob is here, Alice is herself), the latest seen first.
        self.assertEqual(got[2], {"CMD": "KNOWN", "DATA": [entry(DAVE), entry(CAROL)]})
        self.assertEqual([o["CMD"] for o in got[3:]], ["MSG", "HISTORY"])
        # Carol comes back as Caz and leaves, then Alice: listed first, as Caz,
        # and Alice too once away.
        await self.visit(port, ("Caz", CAROL[1]))
        await self.leave(port, alice, ALICE)
        _, got = await self.joined(port, DAVE, CAPS=["known"])
        self.assertEqual(got[2]["DATA"], [entry(ALICE), entry(("Caz", CAROL[1]))])

    async def test_no_known_without_the_capability(self) -> None:
        port = await self.server(*AUTH)
        await self.visit(port, CAROL)
        alice, got = await self.joined(port, ALICE, CAPS=["history"])
        self.assertNotIn("KNOWN", [o["CMD"] for o in got])
        bob, _ = await self.joined(port, BOB)
        bob.send_json(send("next", [ALICE[1]], BOB[1]))
        # What comes next is Bob's LIST and message: no KNOWN in between.
        self.assertEqual(
            [o["CMD"] for o in await alice.next_objects(2)], ["LIST", "MSG"]
        )

    async def test_without_auth_nobody_is_known(self) -> None:
        port = await self.server()
        client = await connect(self, port)
        client.send_json(join(*CAROL, V=2))
        await client.next_objects(2)
        await client.close()
        alice = await connect(self, port)
        alice.send_json(join(*ALICE, V=2, CAPS=["known"]))
        got = await alice.next_objects(3)
        self.assertEqual(got[2], {"CMD": "KNOWN", "DATA": []})


async def until_history(client: RawClient) -> list[dict[str, Any]]:
    """What ``client`` receives up to and including a HISTORY marker."""
    received = []
    for _ in range(300):
        received.append(await client.next_object())
        if received[-1].get("CMD") == "HISTORY":
            break
    return received


class SQLiteKnownTests(KnownTestsMixin, TestCase):
    """In an SQLite file."""

    def db(self) -> str:
        return os.path.join(fresh_directory(self), "history.db")

    async def test_known_users_and_nicknames_survive_a_restart(self) -> None:
        args = ["--db", self.database, *AUTH, "--listen", "tcp:0:interface=127.0.0.1"]
        service, port = await run_service(args)
        await self.start_watching(port)
        try:
            await self.visit(port, CAROL, "before the restart")
            await self.visit(port, ("Caz", CAROL[1]))
        finally:
            await service.stopService()
        port = await self.server(*AUTH)
        _, got = await self.joined(port, ALICE, CAPS=["known", "history"])
        self.assertEqual(got[2], {"CMD": "KNOWN", "DATA": [entry(("Caz", CAROL[1]))]})
        self.assertEqual(
            [(o["MSG"], o["UN"]) for o in got if o["CMD"] == "MSG"],
            [("before the restart", "Carol")],
        )


class PostgresKnownTests(KnownTestsMixin, TestCase):
    """In a real PostgreSQL database."""

    def db(self) -> str:
        return pgsupport.fresh_database(self)


async def run_service(args: list[str]) -> tuple[Any, int]:
    """A server the test stops itself (to start another on its database)."""
    options = tap.Options()
    options.parseOptions(["--list-interval", "0", "--web", "none", *args])
    service = tap.makeService(options)
    service.privilegedStartService()
    service.startService()
    (listening,) = [
        child._waitingForPort
        for child in service
        if isinstance(child, StreamServerEndpointService)
    ]
    port = await defer.maybeDeferred(lambda: listening)
    return service, port.getHost().port
