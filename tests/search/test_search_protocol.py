"""``SEARCH`` over loopback TCP on the twistd service, on SQLite and on a
real PostgreSQL: the matches newest first as ``MSG`` (``HIST``, ``SEARCH``,
``ROOM`` for a rooms client) then ``SEARCH MORE``; only what the user may
read back (not another user's private messages, not a private room it is
not in); ``FROM``, ``BEFORE``, ``LIMIT``; bad queries as one ``ERROR
BAD_QUERY``."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from tests.support import RawClient, connect, join, send, start_server
from tests.support import postgres as pgsupport
from tests.support.twistd import fresh_directory

AUTH = ("--auth", "memory:alice:a:bob:b:carol:c")


async def until(client: RawClient, *commands: str) -> list[dict[str, Any]]:
    """What ``client`` gets up to and including the first object whose
    ``CMD`` is one of ``commands``."""
    got = []
    while True:
        obj = await client.next_object()
        got.append(obj)
        if obj.get("CMD") in commands:
            return got


def found(answer: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """A search's answer as (MSG, FROM, TYPE, ROOM) per item, and the marker."""
    return [
        (o["MSG"], o["FROM"], o["TYPE"], o.get("ROOM"))
        if o["CMD"] == "MSG"
        else (o["CMD"], o.get("MORE", o.get("CODE")))
        for o in answer
    ]


class SearchProtocolMixin:
    """The tests, on the database :meth:`db` names."""

    def db(self) -> str:
        raise NotImplementedError

    async def joined(
        self, port: int, uid: str, rooms: bool = True, **extra: Any
    ) -> RawClient:
        client = await connect(self, port)  # type: ignore[arg-type]
        caps = ["rooms", "search"] if rooms else ["search"]
        client.send_json(join(uid.title(), uid, CAPS=caps, PASS=uid[0], **extra))
        await until(client, "LIST")
        return client

    async def search(self, client: RawClient, **fields: Any) -> list[dict[str, Any]]:
        client.send_json({"CMD": "SEARCH", **fields})
        # What else comes meanwhile (rosters, live messages) is not its.
        answer = []
        while True:
            obj = await client.next_object()
            if obj.get("CMD") == "MSG" and obj.get("SEARCH") is True:
                answer.append(obj)
            elif obj.get("CMD") == "SEARCH" or obj.get("REF") == "SEARCH":
                return [*answer, obj]

    async def test_matches_newest_first_then_the_marker(self) -> None:
        port = await start_server(self, "--db", self.db(), *AUTH)  # type: ignore[arg-type]
        alice = await self.joined(port, "alice")
        bob = await self.joined(port, "bob", rooms=False)
        for text in ("plan A is off", "planet earth", "the café plan", "lunch"):
            alice.send_json(send(text, [], "alice"))
            await until(bob, "MSG")
        answer = await self.search(bob, Q="PLAN")
        self.assertEqual(
            found(answer),
            [
                ("the café plan", "alice", "ALL", None),
                ("plan A is off", "alice", "ALL", None),
                ("SEARCH", False),
            ],
        )
        first = answer[0]
        self.assertEqual(
            (first["HIST"], first["SEARCH"], first["UN"]), (True, True, "Alice")
        )
        self.assertGreater(first["ID"], answer[1]["ID"])
        # A rooms client is told the room of each.
        answer = await self.search(alice, Q="cafe plan*", LIMIT=1)
        self.assertEqual(
            found(answer),
            [("the café plan", "alice", "ALL", "general"), ("SEARCH", False)],
        )
        answer = await self.search(alice, Q="plan*", LIMIT=2)
        self.assertEqual(
            [o["MSG"] for o in answer[:-1]], ["the café plan", "planet earth"]
        )
        self.assertEqual(answer[-1], {"CMD": "SEARCH", "MORE": True})
        older = await self.search(alice, Q="plan*", LIMIT=2, BEFORE=answer[-2]["ID"])
        self.assertEqual(
            found(older),
            [("plan A is off", "alice", "ALL", "general"), ("SEARCH", False)],
        )
        self.assertEqual(
            found(await self.search(alice, Q="plan", FROM="bob")), [("SEARCH", False)]
        )

    async def test_only_what_the_user_may_read_back(self) -> None:
        port = await start_server(self, "--db", self.db(), *AUTH)  # type: ignore[arg-type]
        alice = await self.joined(port, "alice")
        bob = await self.joined(port, "bob")
        carol = await self.joined(port, "carol")
        alice.send_json({"CMD": "ENTER", "ROOM": "hidden"})
        await until(alice, "ENTERED")
        alice.send_json({"CMD": "ROOMSET", "ROOM": "hidden", "PRIVATE": True})
        alice.send_json(
            {
                "CMD": "SEND",
                "MSG": "secret one",
                "TO": [],
                "FROM": "alice",
                "ROOM": "hidden",
            }
        )
        alice.send_json(send("secret two", ["bob"], "alice"))
        alice.send_json(send("secret three", [], "alice"))
        await until(bob, "MSG")
        await until(carol, "MSG")
        bob_answer = await self.search(bob, Q="secret")
        self.assertEqual(
            found(bob_answer),
            [
                ("secret three", "alice", "ALL", "general"),
                ("secret two", "alice", "PRIVATE", None),
                ("SEARCH", False),
            ],
        )
        self.assertEqual(
            found(await self.search(carol, Q="secret")),
            [("secret three", "alice", "ALL", "general"), ("SEARCH", False)],
        )
        # (Kept in the store: the private room's broadcast, once the bus
        # stores rooms' broadcasts; alice may find it, nobody else.)
        mine = [o["MSG"] for o in (await self.search(alice, Q="secret"))[:-1]]
        self.assertEqual(
            [text for text in mine if text != "secret one"],
            ["secret three", "secret two"],
        )
        # ROOM: that room's broadcasts only; a private room one is not in
        # is no room.
        in_hidden = await self.search(alice, Q="secret", ROOM="#Hidden")
        self.assertEqual(in_hidden[-1], {"CMD": "SEARCH", "MORE": False})
        self.assertEqual({o["ROOM"] for o in in_hidden[:-1]} - {"hidden"}, set())
        in_general = await self.search(alice, Q="secret", ROOM="general")
        self.assertEqual(
            found(in_general),
            [("secret three", "alice", "ALL", "general"), ("SEARCH", False)],
        )
        refused = await self.search(bob, Q="secret", ROOM="hidden")
        self.assertEqual(found(refused), [("ERROR", "NO_SUCH_ROOM")])
        self.assertEqual(refused[0]["REF"], "SEARCH")

    async def test_without_auth_no_private_messages(self) -> None:
        port = await start_server(self, "--db", self.db())  # type: ignore[arg-type]
        alice = await self.joined(port, "alice", rooms=False)
        bob = await self.joined(port, "bob", rooms=False)
        alice.send_json(send("psst", ["bob"], "alice"))
        await until(bob, "MSG")
        self.assertEqual(found(await self.search(bob, Q="psst")), [("SEARCH", False)])
        self.assertEqual(found(await self.search(alice, Q="psst")), [("SEARCH", False)])

    async def test_bad_queries_get_one_bad_query_error(self) -> None:
        port = await start_server(self, "--db", self.db())  # type: ignore[arg-type]
        alice = await self.joined(port, "alice", rooms=False)
        for fields, code, words in (
            ({"Q": '"plan b'}, "BAD_QUERY", "quote"),
            ({"Q": ""}, "BAD_QUERY", "no words"),
            ({"Q": "  ** !! "}, "BAD_QUERY", "no words"),
            ({"Q": "x" * 201}, "BAD_QUERY", "longer than 200"),
            ({"Q": "東京"}, "BAD_QUERY", "3 characters"),
            ({}, "BAD_QUERY", "needs Q"),
            ({"Q": 5}, "BAD_QUERY", "needs Q"),
            ({"Q": "x", "LIMIT": 51}, "BAD_COMMAND", "1 to 50"),
            ({"Q": "x", "LIMIT": 0}, "BAD_COMMAND", "1 to 50"),
            ({"Q": "x", "BEFORE": -1}, "BAD_COMMAND", "BEFORE"),
            ({"Q": "x", "BEFORE": 2**63}, "BAD_COMMAND", "BEFORE"),
            ({"Q": "x", "FROM": 3}, "BAD_COMMAND", "FROM"),
            ({"Q": "x", "ROOM": "no room!"}, "BAD_ROOM", "no room name"),
        ):
            answer = await self.search(alice, **fields)
            self.assertEqual(len(answer), 1, fields)
            error = answer[0]
            self.assertEqual(
                (error["CMD"], error["CODE"], error["REF"]),
                ("ERROR", code, "SEARCH"),
                fields,
            )
            self.assertIn(words, error["REASON"], fields)
        # FTS5 or tsquery syntax is only words.
        for q in ("NEAR(a b)", "a:* | b", "x' OR '1'='1", "-a", "a AND NOT b"):
            self.assertEqual(found(await self.search(alice, Q=q)), [("SEARCH", False)])

    async def test_before_joining(self) -> None:
        port = await start_server(self, "--db", self.db())  # type: ignore[arg-type]
        client = await connect(self, port)  # type: ignore[arg-type]
        client.send_json({"CMD": "SEARCH", "Q": "x"})
        error = await client.next_object()
        self.assertEqual((error["CODE"], error["REF"]), ("NOT_JOINED", "SEARCH"))


class SQLiteSearchProtocolTests(SearchProtocolMixin, TestCase):
    def db(self) -> str:
        return fresh_directory(self) + "/muca.db"


class PostgresSearchProtocolTests(SearchProtocolMixin, TestCase):
    def db(self) -> str:
        return pgsupport.fresh_database(self)


class NoHistoryTests(TestCase):
    async def test_a_server_without_history_has_nothing_to_search(self) -> None:
        port = await start_server(self, "--db", "none")
        client = await connect(self, port)
        client.send_json(join("Alice", "alice"))
        await until(client, "LIST")
        client.send_json({"CMD": "SEARCH", "Q": "x"})
        error = await client.next_object()
        self.assertEqual((error["CODE"], error["REF"]), ("BAD_COMMAND", "SEARCH"))
