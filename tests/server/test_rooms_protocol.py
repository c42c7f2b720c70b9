"""Rooms on the wire, on in-memory transports: what a client with the
``rooms`` capability sees, and that a client without it sees what it saw
before rooms existed."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from tests.support import (
    OKAY,
    MemoryPeer,
    MemoryServer,
    connect,
    join,
    msg,
    roster,
    send,
    start_service,
)
from tests.support.server import HENRY, MARY, TONY, ServerTestCase, without_ts


def rooms_join(who: tuple[str, str], *caps: str) -> dict[str, Any]:
    """A ``JOIN`` with the rooms capability (and ``caps``)."""
    return join(*who, CAPS=["rooms", *caps])


def listing(*rooms: tuple[str, str, int, bool]) -> dict[str, Any]:
    """``ROOMS`` of (name, topic, count, in) entries."""
    return {
        "CMD": "ROOMS",
        "DATA": [
            {"ROOM": name, "TOPIC": topic, "COUNT": count, "IN": inside}
            for name, topic, count, inside in rooms
        ],
    }


def in_room(obj: dict[str, Any], room: str) -> dict[str, Any]:
    return {**obj, "ROOM": room}


def entered(room: str, topic: str = "") -> dict[str, Any]:
    return {"CMD": "ENTERED", "ROOM": room, "TOPIC": topic}


def enter(room: str) -> dict[str, Any]:
    return {"CMD": "ENTER", "ROOM": room}


def exit_(room: str) -> dict[str, Any]:
    return {"CMD": "EXIT", "ROOM": room}


def room_send(text: str, sender: str, room: str) -> dict[str, Any]:
    return {**send(text, [], sender), "ROOM": room}


class RoomsTestCase(ServerTestCase):
    def rooms_joined(self, *who: tuple[str, str]) -> list[MemoryPeer]:
        """Join each with the rooms capability, in order; drain them."""
        peers = []
        for person in who:
            peer = self.server.connect()
            peer.send_json(rooms_join(person))
            self.assertEqual(peer.take()[0], OKAY)
            peers.append(peer)
        for peer in peers:
            peer.take()
        return peers

    def assertObjects(self, peer: MemoryPeer, expected: list[dict[str, Any]]) -> None:
        self.assertEqual(without_ts(peer.take()), expected)


class JoinTests(RoomsTestCase):
    def test_a_rooms_client_gets_rooms_then_the_default_rooms_list(self) -> None:
        tony = self.server.connect()
        tony.send_json(rooms_join(TONY))
        self.assertEqual(
            tony.take(),
            [
                OKAY,
                listing(("general", "", 1, True)),
                in_room(roster(TONY), "general"),
            ],
        )

    def test_both_kinds_of_client_share_the_default_room(self) -> None:
        (mary,) = self.joined(MARY)
        tony = self.server.connect()
        tony.send_json(rooms_join(TONY))
        self.assertEqual(
            tony.take(),
            [
                OKAY,
                listing(("general", "", 2, True)),
                in_room(roster(MARY, TONY), "general"),
            ],
        )
        # Mary's bytes are those of a server without rooms.
        self.assertEqual(mary.take_bytes(), _encoded(roster(MARY, TONY)))
        mary.send_json(send("hi", [], MARY[1]))
        self.assertObjects(tony, [in_room(msg("ALL", "hi", MARY[1]), "general")])
        tony.send_json(send("hello", [], TONY[1]))
        self.assertObjects(mary, [msg("ALL", "hello", TONY[1])])
        self.assertObjects(tony, [])

    def test_the_default_room_is_the_operators(self) -> None:
        self.server = MemoryServer(default_room="lobby")
        self.addCleanup(self.server.stop)
        tony = self.server.connect()
        tony.send_json(rooms_join(TONY))
        self.assertEqual(
            tony.take()[1:],
            [listing(("lobby", "", 1, True)), in_room(roster(TONY), "lobby")],
        )

    def test_presence_deltas_carry_the_room(self) -> None:
        tony = self.server.connect()
        tony.send_json(rooms_join(TONY, "presence-delta"))
        tony.take()
        (mary,) = self.rooms_joined(MARY)
        self.assertEqual(
            tony.take(),
            [
                listing(("general", "", 2, True)),
                {
                    "CMD": "PRESENCE",
                    "JOINED": [{"UN": "Mary", "UID": MARY[1]}],
                    "LEFT": [],
                    "ROOM": "general",
                },
            ],
        )


class EnterExitTests(RoomsTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.tony, self.mary = self.rooms_joined(TONY, MARY)
        (self.henry,) = self.joined(HENRY)
        for peer in (self.tony, self.mary):
            peer.take()

    def test_entering_a_new_room_creates_it(self) -> None:
        self.tony.send_json(enter("#Dev"))
        self.assertEqual(
            self.tony.take(),
            [
                entered("dev"),
                listing(("general", "", 3, True), ("dev", "", 1, True)),
                in_room(roster(TONY), "dev"),
            ],
        )
        self.assertEqual(
            self.mary.take(),
            [listing(("general", "", 3, True), ("dev", "", 1, False))],
        )
        self.assertEqual(self.henry.take(), [])

    def test_broadcasts_stay_in_their_room(self) -> None:
        self.tony.send_json(enter("dev"))
        self.mary.send_json(enter("dev"))
        self.tony.take(), self.mary.take()
        self.tony.send_json(room_send("build is red", TONY[1], "dev"))
        self.assertObjects(
            self.mary, [in_room(msg("ALL", "build is red", TONY[1]), "dev")]
        )
        self.assertObjects(self.tony, [])
        self.assertEqual(self.henry.take(), [])
        # TO [] without ROOM is the default room, Henry's too.
        self.tony.send_json(send("lunch?", [], TONY[1]))
        self.assertObjects(self.henry, [msg("ALL", "lunch?", TONY[1])])
        self.assertObjects(
            self.mary, [in_room(msg("ALL", "lunch?", TONY[1]), "general")]
        )

    def test_the_others_in_the_room_get_its_roster(self) -> None:
        self.tony.send_json(enter("dev"))
        self.tony.take(), self.mary.take()
        self.mary.send_json(enter("dev"))
        self.assertEqual(
            self.tony.take(),
            [
                listing(("general", "", 3, True), ("dev", "", 2, True)),
                in_room(roster(TONY, MARY), "dev"),
            ],
        )
        self.mary.take()
        self.mary.send_json(exit_("#DEV"))
        self.assertEqual(
            self.tony.take(),
            [
                listing(("general", "", 3, True), ("dev", "", 1, True)),
                in_room(roster(TONY), "dev"),
            ],
        )
        self.assertEqual(
            self.mary.take(),
            [listing(("general", "", 3, True), ("dev", "", 1, False))],
        )

    def test_exiting_the_default_room(self) -> None:
        self.tony.send_json(exit_("general"))
        self.assertEqual(self.tony.take(), [listing(("general", "", 2, False))])
        self.assertEqual(self.henry.take(), [roster(MARY, HENRY)])
        self.assertEqual(
            self.mary.take(),
            [
                listing(("general", "", 2, True)),
                in_room(roster(MARY, HENRY), "general"),
            ],
        )
        # Out of it, no broadcast of it reaches Tony, and Tony cannot send to it.
        self.henry.send_json(send("hi", [], HENRY[1]))
        self.assertEqual(self.tony.take(), [])
        self.tony.send_json(send("hi", [], TONY[1]))
        self.assertError(self.tony.take(), "NOT_IN_ROOM", "SEND")
        self.assertEqual(self.henry.take(), [])

    def test_private_and_group_reach_users_whatever_their_rooms(self) -> None:
        self.tony.send_json(enter("dev"))
        self.tony.send_json(exit_("general"))
        self.tony.take()
        self.henry.take(), self.mary.take()
        self.henry.send_json(send("psst", ["Tony"], HENRY[1]))
        self.assertObjects(self.tony, [msg("PRIVATE", "psst", HENRY[1])])
        self.tony.send_json(
            {**send("both", [HENRY[1], MARY[1]], TONY[1]), "ROOM": "dev"}
        )
        group = msg("GROUP", "both", TONY[1], [HENRY[1], MARY[1]])
        self.assertObjects(self.henry, [group])
        self.assertObjects(self.mary, [group])

    def test_sending_to_a_room_one_left_is_not_in_room(self) -> None:
        self.tony.send_json(enter("dev"))
        self.tony.send_json(exit_("dev"))
        self.tony.take()
        self.tony.send_json(room_send("anyone?", TONY[1], "dev"))
        self.assertError(self.tony.take(), "NOT_IN_ROOM", "SEND")
        self.tony.send_json(room_send("anyone?", TONY[1], "nowhere"))
        self.assertError(self.tony.take(), "NO_SUCH_ROOM", "SEND")
        self.assertEqual(
            (self.mary.take()[-1:], self.henry.take()),
            ([listing(("general", "", 3, True), ("dev", "", 0, False))], []),
        )

    def test_bad_input_is_one_error_and_nothing_else(self) -> None:
        self.tony.send_json(enter("dev"))
        self.tony.take(), self.mary.take()
        cases = [
            (enter("no room!"), "BAD_ROOM", "ENTER"),
            (enter("x" * 33), "BAD_ROOM", "ENTER"),
            ({"CMD": "ENTER"}, "BAD_ROOM", "ENTER"),
            (enter("DEV"), "ALREADY_IN_ROOM", "ENTER"),
            (exit_("random"), "NO_SUCH_ROOM", "EXIT"),
            (room_send("x", TONY[1], "#"), "BAD_ROOM", "SEND"),
            ({"CMD": "ROOMSET", "ROOM": "dev"}, "BAD_COMMAND", "ROOMSET"),
            ({"CMD": "ROOMSET", "ROOM": "dev", "SLOW": -1}, "BAD_COMMAND", "ROOMSET"),
            ({"CMD": "INVITE", "ROOM": "dev"}, "BAD_COMMAND", "INVITE"),
        ]
        for command, code, ref in cases:
            self.tony.send_json(command)
            self.assertError(self.tony.take(), code, ref)
        self.mary.send_json(exit_("dev"))
        self.assertError(self.mary.take(), "NOT_IN_ROOM", "EXIT")
        self.mary.send_json({"CMD": "ROOMSET", "ROOM": "dev", "TOPIC": "mine"})
        self.assertError(self.mary.take(), "NOT_ALLOWED", "ROOMSET")
        self.mary.send_json({"CMD": "ROOMSET", "ROOM": "general", "TOPIC": "mine"})
        self.assertError(self.mary.take(), "NOT_ALLOWED", "ROOMSET")
        self.assertEqual((self.tony.take(), self.henry.take()), ([], []))

    def test_nobody_creates_rooms_when_the_operator_says_so(self) -> None:
        self.server = MemoryServer(create_rooms="nobody")
        self.addCleanup(self.server.stop)
        (tony,) = self.rooms_joined(TONY)
        tony.send_json(enter("dev"))
        self.assertError(tony.take(), "NO_SUCH_ROOM", "ENTER")


class SettingsTests(RoomsTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.tony, self.mary = self.rooms_joined(TONY, MARY)
        self.tony.send_json(enter("dev"))
        self.tony.take(), self.mary.take()

    def test_the_owner_sets_the_topic_and_members_hear_of_it(self) -> None:
        self.mary.send_json(enter("dev"))
        self.mary.take(), self.tony.take()
        self.tony.send_json({"CMD": "ROOMSET", "ROOM": "dev", "TOPIC": "the build"})
        topic = {"CMD": "TOPIC", "ROOM": "dev", "TOPIC": "the build", "BY": TONY[1]}
        rooms = listing(("general", "", 2, True), ("dev", "the build", 2, True))
        self.assertEqual(self.tony.take(), [topic, rooms])
        self.assertEqual(self.mary.take(), [topic, rooms])
        self.mary.send_json(exit_("dev"))
        self.mary.send_json(enter("dev"))
        self.assertEqual(self.mary.take()[0], entered("dev", "the build"))

    def test_a_private_room_is_hidden_and_invite_only(self) -> None:
        self.tony.send_json({"CMD": "ROOMSET", "ROOM": "dev", "PRIVATE": True})
        self.assertEqual(self.mary.take(), [listing(("general", "", 2, True))])
        self.assertEqual(self.tony.take(), [])
        self.mary.send_json(enter("dev"))
        self.assertError(self.mary.take(), "INVITE_ONLY", "ENTER")
        self.mary.send_json({"CMD": "INVITE", "ROOM": "dev", "UID": MARY[1]})
        self.assertError(self.mary.take(), "NOT_IN_ROOM", "INVITE")
        self.tony.send_json({"CMD": "INVITE", "ROOM": "dev", "UID": MARY[1]})
        self.assertEqual(
            self.mary.take(),
            [listing(("general", "", 2, True), ("dev", "", 1, False))],
        )
        self.mary.send_json(enter("dev"))
        self.assertEqual(
            self.mary.take(),
            [
                entered("dev"),
                listing(("general", "", 2, True), ("dev", "", 2, True)),
                in_room(roster(TONY, MARY), "dev"),
            ],
        )


class WithoutTheCapabilityTests(RoomsTestCase):
    def test_room_commands_are_unknown_as_before(self) -> None:
        (henry,) = self.joined(HENRY)
        for name in ("ENTER", "EXIT", "ROOMSET", "INVITE"):
            henry.send_json({"CMD": name, "ROOM": "dev"})
            self.assertEqual(
                henry.take(),
                [
                    {
                        "CMD": "ERROR",
                        "CODE": "BAD_COMMAND",
                        "REASON": f"unknown command {name!r}",
                        "REF": name,
                    }
                ],
            )

    def test_room_commands_before_joining_are_unknown(self) -> None:
        tony = self.server.connect()
        tony.send_json(enter("dev"))
        self.assertError(tony.take(), "BAD_COMMAND", "ENTER")

    def test_a_room_in_send_is_ignored(self) -> None:
        (henry, mary) = self.joined(HENRY, MARY)
        (tony,) = self.rooms_joined(TONY)
        tony.send_json(enter("dev"))
        henry.take(), mary.take()
        henry.send_json(room_send("hi", HENRY[1], "dev"))
        self.assertObjects(mary, [msg("ALL", "hi", HENRY[1])])
        self.assertEqual(henry.take(), [])

    def test_rooms_elsewhere_change_no_byte_of_its_stream(self) -> None:
        (henry,) = self.joined(HENRY)
        tony, mary = self.rooms_joined(TONY, MARY)
        henry.take_bytes()
        tony.send_json(enter("dev"))
        mary.send_json(enter("dev"))
        tony.send_json({"CMD": "ROOMSET", "ROOM": "dev", "TOPIC": "t"})
        tony.send_json(room_send("in dev", TONY[1], "dev"))
        mary.send_json(exit_("dev"))
        self.assertEqual(henry.take_bytes(), b"")


def _encoded(obj: dict[str, Any]) -> bytes:
    from muca.protocol.wire import Framing, encode

    return encode(obj, Framing.NATIVE)


class DefaultRoomOptionTests(TestCase):
    """``twistd muca --default-room`` on a real loopback server."""

    async def test_a_rooms_client_is_in_the_named_default_room(self) -> None:
        (port,) = await start_service(
            self, "--listen", "tcp:0:interface=127.0.0.1", "--default-room", "Lobby"
        )
        tony = await connect(self, port.getHost().port)
        tony.send_json(rooms_join(TONY))
        self.assertEqual(await tony.next_objects(3), [
            OKAY,
            listing(("lobby", "", 1, True)),
            in_room(roster(TONY), "lobby"),
        ])  # fmt: skip
