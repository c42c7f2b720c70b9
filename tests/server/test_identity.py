"""Identity and routing, as an attacker meets them, on a real server over
loopback (TCP and WebSocket, with and without ``--auth``, SQLite history):
nobody takes another user's private messages through a nickname equal to
that user's id, in whatever order the two join; nicknames with invisible
characters or that look like one in use are refused; what is accepted is
kept in NFC."""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import TestCase

from tests.support import OKAY, RawClient, connect, join, send, start_service
from tests.support.twistd import fresh_directory
from tests.support.websocket import connect_websocket

ALICE = ("Alice", "alice")
CAROL = ("Carol", "carol")
# Eve's nickname is Carol's user id.
EVE = ("carol", "eve")
PASSWORDS = {
    "alice": "a",
    "carol": "c",
    "eve": "e",
    "mary": "m",
    "dave": "d",
    "zoe": "z",
    "bill": "b",
}
AUTH = ("--auth", "memory:" + ":".join(f"{u}:{p}" for u, p in PASSWORDS.items()))


def join_as(who: tuple[str, str], **extra: Any) -> dict[str, Any]:
    """A JOIN with the history capability and the user's password."""
    return join(*who, CAPS=["history"], PASS=PASSWORDS.get(who[1], "x"), **extra)


class IdentityTestsMixin:
    """The attacks; subclasses say whether peers use TCP or WebSocket and
    whether the server authenticates."""

    websocket = False
    auth = False

    async def server(self) -> None:
        path = os.path.join(fresh_directory(self), "muca.db")
        args = ["--db", path, "--listen", "tcp:0:interface=127.0.0.1"]
        args += ["--web", "tcp:0:interface=127.0.0.1"]
        if self.auth:
            args += AUTH
        tcp, web = await start_service(self, *args)
        self.tcp_port, self.web_port = tcp.getHost().port, web.getHost().port

    async def peer(self) -> RawClient:
        if self.websocket:
            client = await connect_websocket(self, self.web_port)
            self.assertEqual(client.status, 101)
            return client
        return await connect(self, self.tcp_port)

    async def ack(self, who: tuple[str, str], **extra: Any) -> tuple[RawClient, Any]:
        """Connect, JOIN; the client and its ACK."""
        client = await self.peer()
        client.send_json(join_as(who, **extra))
        return client, await client.next_object()

    async def joined(self, who: tuple[str, str]) -> RawClient:
        client, ack = await self.ack(who)
        self.assertEqual(ack, OKAY, who)
        await self.until(client, "HISTORY")
        return client

    async def until(self, client: RawClient, cmd: str) -> Any:
        """The next object with this CMD (others skipped, at most 100)."""
        for _ in range(100):
            obj = await client.next_object()
            if obj.get("CMD") == cmd:
                return obj
        raise AssertionError(f"no {cmd}")

    async def before(self, client: RawClient, cmd: str) -> list[Any]:
        """Everything up to and including the next object with this CMD."""
        seen = []
        for _ in range(100):
            seen.append(await client.next_object())
            if seen[-1].get("CMD") == cmd:
                return seen
        raise AssertionError(f"no {cmd}")

    async def private_of(self, client: RawClient) -> tuple[str, str]:
        msg = await self.until(client, "MSG")
        return msg["TYPE"], msg["MSG"]

    async def test_eve_first_then_carol(self) -> None:
        """Eve holds the nickname ``carol`` (Carol never joined): Carol's id
        is then refused, as it would be ambiguous in TO."""
        await self.server()
        alice = await self.joined(ALICE)
        eve = await self.joined(EVE)
        carol, ack = await self.ack(CAROL)
        self.assertEqual(
            (ack["TYPE"], ack["CODE"], ack["REASON"]),
            (
                "FAIL",
                "UID_TAKEN",
                "user id 'carol' is another user's nickname: messages to it"
                " would be ambiguous",
            ),
        )
        # Eve is the only "carol" there is.
        alice.send_json(send("hi carol", ["carol"], "alice"))
        self.assertEqual(await self.private_of(eve), ("PRIVATE", "hi carol"))
        await eve.close()
        for _ in range(100):
            roster = await self.until(alice, "LIST")
            if {"UN": "carol", "UID": "eve"} not in roster["DATA"]:
                break
        # Once Eve is gone, Carol may join on the same connection.
        carol.send_json(join_as(CAROL))
        self.assertEqual(await carol.next_object(), OKAY)

    async def test_carol_first_then_eve(self) -> None:
        await self.server()
        alice = await self.joined(ALICE)
        carol = await self.joined(CAROL)
        eve, ack = await self.ack(EVE)
        self.assertEqual(
            (ack["TYPE"], ack["CODE"], ack["REASON"]),
            ("FAIL", "NICK_TAKEN", "nickname 'carol' is another user's user id"),
        )
        alice.send_json(send("hi carol", ["carol"], "alice"))
        self.assertEqual(await self.private_of(carol), ("PRIVATE", "hi carol"))
        # Eve, still connected but not joined, got nothing.
        alice.send_json(send("to all", [], "alice"))
        self.assertEqual(await self.private_of(carol), ("ALL", "to all"))
        self.assertEqual(eve.pending(), [])

    async def test_own_user_id_as_nickname_is_fine(self) -> None:
        await self.server()
        alice = await self.joined(ALICE)
        carol = await self.joined(("carol", "carol"))
        alice.send_json(send("hi", ["carol"], "alice"))
        self.assertEqual(await self.private_of(carol), ("PRIVATE", "hi"))

    async def test_look_alike_nickname_is_refused(self) -> None:
        await self.server()
        await self.joined(("Mary", "mary"))
        # Cyrillic М, Cyrillic а, Greek α, digit 1 for l: all look like Mary.
        for nickname in ("\u041cary", "M\u0430ry", "M\u03b1ry"):
            with self.subTest(nickname=nickname):
                _, ack = await self.ack((nickname, "dave"))
                self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "NICK_TAKEN"))
        _, ack = await self.ack(("\u041cary", "dave"))
        self.assertEqual(
            ack["REASON"],
            "nickname '\u041cary' looks like 'Mary', which is already in use",
        )
        # An ASCII look-alike too: Bi11 (ones) beside Bill.
        await self.joined(("Bill", "bill"))
        _, ack = await self.ack(("Bi11", "dave"))
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "NICK_TAKEN"))

    async def test_invisible_and_control_characters_are_refused(self) -> None:
        await self.server()
        cases = {
            ("Mal\u202eyrotcM", "dave"): "UN must not contain format characters"
            " (U+202E at position 4)",
            ("Dave\x1b[2J", "dave"): "UN must not contain control characters"
            " (U+001B at position 5)",
            ("Da\x00ve", "dave"): "UN must not contain control characters"
            " (U+0000 at position 3)",
            ("Da\nve", "dave"): "UN must not contain control characters"
            " (U+000A at position 3)",
            ("Dave", "dave "): "UID must not start or end with a space",
            ("Dave", "   "): "UID must not be blank",
            ("Dave", "da\u200dve"): "UID must not contain format characters"
            " (U+200D at position 3)",
        }
        for (nickname, uid), reason in cases.items():
            with self.subTest(nickname=nickname, uid=uid):
                _, ack = await self.ack((nickname, uid))
                self.assertEqual(
                    (ack["TYPE"], ack["CODE"], ack["REASON"]),
                    ("FAIL", "BAD_JOIN", reason),
                )

    async def test_names_are_kept_in_nfc(self) -> None:
        await self.server()
        alice = await self.joined(ALICE)
        # "Zoé" with a combining accent; the list says it in one character.
        zoe = await self.joined(("Zoe\u0301", "zoe"))
        roster = await self.until(alice, "LIST")
        self.assertIn({"UN": "Zo\u00e9", "UID": "zoe"}, roster["DATA"])
        alice.send_json(send("salut", ["Zo\u00e9"], "alice"))
        self.assertEqual(await self.private_of(zoe), ("PRIVATE", "salut"))
        # The precomposed form is the same nickname.
        _, ack = await self.ack(("Zo\u00e9", "dave"))
        self.assertEqual(ack["CODE"], "NICK_TAKEN")


class AuthIdentityTestsMixin(IdentityTestsMixin):
    """With --auth, an id that joined once owns its name while away."""

    auth = True

    async def test_carol_known_but_away_then_eve(self) -> None:
        await self.server()
        carol = await self.joined(CAROL)
        await carol.close()
        alice = await self.joined(ALICE)
        eve, ack = await self.ack(EVE)
        self.assertEqual(
            (ack["TYPE"], ack["CODE"], ack["REASON"]),
            ("FAIL", "NICK_TAKEN", "nickname 'carol' is another user's user id"),
        )
        eve.send_json(join_as(("Eve", "eve")))
        self.assertEqual(await eve.next_object(), OKAY)
        # A message to "carol" is Carol's, kept for her; Alice gets no error.
        alice.send_json(send("while you were out", ["carol"], "alice"))
        alice.send_json(send("marker", [], "alice"))
        self.assertEqual(await self.private_of(eve), ("ALL", "marker"))
        eve.send_json(send("got it", ["alice"], "eve"))
        before = await self.before(alice, "MSG")
        self.assertEqual([o for o in before if o["CMD"] == "ERROR"], [])
        carol = await self.peer()
        carol.send_json(join_as(CAROL))
        texts = []
        for _ in range(100):
            obj = await carol.next_object()
            if obj.get("CMD") == "HISTORY":
                break
            if obj.get("CMD") == "MSG":
                texts.append((obj["TYPE"], obj["MSG"]))
        self.assertEqual(texts, [("PRIVATE", "while you were out"), ("ALL", "marker")])


class NoAuthIdentityTestsMixin(IdentityTestsMixin):
    """Without --auth a user id is nobody's while it is away."""

    async def test_carol_away_then_eve(self) -> None:
        """Eve could join with the id ``carol`` itself: an away id is not
        protected, and ``carol`` in TO is whoever holds that name now."""
        await self.server()
        carol = await self.joined(CAROL)
        await carol.close()
        alice = await self.joined(ALICE)
        eve = await self.joined(EVE)
        alice.send_json(send("hi", ["carol"], "alice"))
        self.assertEqual(await self.private_of(eve), ("PRIVATE", "hi"))
        _, ack = await self.ack(CAROL)
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "UID_TAKEN"))


class TcpTests(NoAuthIdentityTestsMixin, TestCase):
    pass


class WebSocketTests(NoAuthIdentityTestsMixin, TestCase):
    websocket = True


class TcpAuthTests(AuthIdentityTestsMixin, TestCase):
    pass


class WebSocketAuthTests(AuthIdentityTestsMixin, TestCase):
    websocket = True
