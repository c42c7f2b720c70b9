"""Tests of the pure rooms core: room names, the directory of users, rooms
with their own members and roster updates, the create policy, routing."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from muca.protocol.messages import (
    ALL,
    BAD_ROOM,
    GROUP,
    PRIVATE,
    ProtocolError,
    room_name,
    rooms_payload,
)
from muca.protocol.wire import Framing, encode
from muca.server.directory import Member
from muca.server.room import Room
from muca.server.rooms import ChatRoom, CreatePolicy, Rooms, by_capability

TONY = {"UN": "Tony", "UID": "t"}
MARY = {"UN": "Mary", "UID": "m"}
HUGO = {"UN": "Hugo", "UID": "h"}


class RoomNameTests(SynchronousTestCase):
    def test_names_are_lowered_and_lose_one_leading_hash(self) -> None:
        self.assertEqual(room_name("General", "ENTER"), "general")
        self.assertEqual(room_name("#Dev-Team_2", "ENTER"), "dev-team_2")
        self.assertEqual(room_name("x" * 32, "ENTER"), "x" * 32)

    def test_bad_names_are_bad_room_with_the_commands_ref(self) -> None:
        for bad in ["", "#", "##dev", "x" * 33, "dev team", "dév", "a.b", 5, None]:
            with self.assertRaises(ProtocolError) as caught:
                room_name(bad, "ENTER")
            error = caught.exception
            self.assertEqual((error.code, error.ref), (BAD_ROOM, "ENTER"))
            expected = "1 to 32 characters" if isinstance(bad, str) else "a string"
            self.assertIn(expected, error.reason)


class CreatePolicyTests(SynchronousTestCase):
    def test_who_may_create(self) -> None:
        table = {
            (p.value, admin): Rooms(create=p.value).may_create(admin)
            for p in CreatePolicy
            for admin in (False, True)
        }
        self.assertEqual(
            table,
            {
                ("anyone", False): True,
                ("anyone", True): True,
                ("admins", False): False,
                ("admins", True): True,
                ("nobody", False): False,
                ("nobody", True): False,
            },
        )

    def test_an_unknown_policy_is_refused(self) -> None:
        self.assertRaises(ValueError, Rooms, create="everybody")


class DirectoryAndRoomsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.room = Room(default_room="lobby")
        self.tony = self.room.join("c1", "Tony", "t", rooms=True)
        self.mary = self.room.join("c2", "Mary", "m", rooms=True)
        self.hugo = self.room.join("c3", "Hugo", "h")
        self.room.take_roster_updates()
        self.dev = self.room.rooms.create("dev", owner="t")

    def test_join_enters_the_default_room_only(self) -> None:
        self.assertEqual(self.room.default.name, "lobby")
        self.assertEqual(self.room.default.members(), [self.tony, self.mary, self.hugo])
        self.assertEqual(list(self.hugo.entered), ["lobby"])
        self.assertEqual([r.name for r in self.room.rooms.all()], ["lobby", "dev"])

    def test_a_room_broadcast_reaches_that_rooms_other_members_only(self) -> None:
        self.room.enter(self.tony, self.dev)
        self.room.enter(self.mary, self.dev)
        route = self.room.route(self.tony, [], self.dev)
        self.assertEqual(
            (route.kind, route.recipients, route.room), (ALL, [self.mary], self.dev)
        )
        route = self.room.route(self.tony, [])
        self.assertEqual(
            (route.recipients, route.room), ([self.mary, self.hugo], self.room.default)
        )

    def test_private_and_group_reach_users_in_any_room(self) -> None:
        self.room.enter(self.tony, self.dev)
        self.room.exit(self.tony, self.room.default)
        route = self.room.route(self.hugo, ["Tony"])
        self.assertEqual(
            (route.kind, route.recipients, route.room), (PRIVATE, [self.tony], None)
        )
        route = self.room.route(self.hugo, ["t", "m", "nobody"])
        self.assertEqual(
            (route.kind, route.recipients, route.unknown),
            (GROUP, [self.tony, self.mary], ("nobody",)),
        )

    def test_leaving_the_server_exits_every_room(self) -> None:
        self.room.enter(self.tony, self.dev)
        self.room.take_roster_updates()
        self.assertTrue(self.room.leave(self.tony))
        self.assertEqual(self.tony.entered, {})
        self.assertNotIn("t", self.dev)
        self.assertNotIn("t", self.room.default)
        updates = {u.room: u.full_list for u in self.room.take_roster_updates()}
        self.assertEqual(
            updates,
            {
                "lobby": {"CMD": "LIST", "DATA": [MARY, HUGO]},
                "dev": {"CMD": "LIST", "DATA": []},
            },
        )

    def test_each_room_coalesces_its_own_roster_updates(self) -> None:
        self.room.enter(self.tony, self.dev)
        self.room.enter(self.mary, self.dev)
        self.room.exit(self.mary, self.dev)
        (update,) = self.room.take_roster_updates()
        self.assertEqual(update.room, "dev")
        self.assertEqual(update.full_list, {"CMD": "LIST", "DATA": [TONY]})
        self.assertEqual(update.list_recipients, [self.tony])
        self.assertEqual(self.room.take_roster_updates(), [])

    def test_presence_deltas_are_per_room(self) -> None:
        room = Room()
        tony = room.join("c1", "Tony", "t", presence=True, rooms=True)
        room.take_roster_updates()
        dev = room.rooms.create("dev", "t")
        room.enter(tony, dev)
        mary = room.join("c2", "Mary", "m", presence=True, rooms=True)
        updates = {u.room: u for u in room.take_roster_updates()}
        general, first = updates["general"], updates["dev"]
        # Tony has had general's list: a delta there; dev's list is its first.
        self.assertEqual(
            (general.delta, general.delta_recipients, general.list_recipients),
            ({"CMD": "PRESENCE", "JOINED": [MARY], "LEFT": []}, [tony], [mary]),
        )
        self.assertEqual(
            (first.full_list, first.list_recipients, first.delta),
            ({"CMD": "LIST", "DATA": [TONY]}, [tony], None),
        )
        room.enter(mary, dev)
        (update,) = room.take_roster_updates()
        self.assertEqual(
            (update.delta, update.delta_recipients, update.list_recipients),
            ({"CMD": "PRESENCE", "JOINED": [MARY], "LEFT": []}, [tony], [mary]),
        )

    def test_entering_twice_or_exiting_a_room_one_is_not_in_changes_nothing(
        self,
    ) -> None:
        self.assertFalse(self.room.enter(self.tony, self.room.default))
        self.assertFalse(self.room.exit(self.tony, self.dev))
        self.assertEqual(self.room.take_roster_updates(), [])


class SettingsTests(SynchronousTestCase):
    def test_private_rooms_need_an_invitation_and_are_hidden(self) -> None:
        rooms = Rooms()
        secret = rooms.create("secret", owner="t")
        secret.private = True
        self.assertTrue(secret.may_enter("t"))
        self.assertFalse(secret.may_enter("m"))
        self.assertEqual([e["ROOM"] for e in rooms.listing("m")], ["general"])
        secret.invited.add("m")
        self.assertTrue(secret.may_enter("m"))
        self.assertEqual(
            rooms.listing("m"),
            [
                {"ROOM": "general", "TOPIC": "", "COUNT": 0, "IN": False},
                {"ROOM": "secret", "TOPIC": "", "COUNT": 0, "IN": False},
            ],
        )

    def test_listing_shows_counts_topics_and_membership(self) -> None:
        room = Room()
        tony = room.join("c1", "Tony", "t", rooms=True)
        room.join("c2", "Mary", "m")
        dev = room.rooms.create("dev", "t")
        dev.topic = "the build"
        room.enter(tony, dev)
        self.assertEqual(
            room.rooms.listing("m"),
            [
                {"ROOM": "general", "TOPIC": "", "COUNT": 2, "IN": True},
                {"ROOM": "dev", "TOPIC": "the build", "COUNT": 1, "IN": False},
            ],
        )

    def test_encoded_listings_are_the_bytes_of_each_users_listing(self) -> None:
        room = Room()
        tony = room.join("c1", "Tony", "t", rooms=True)
        mary = room.join("c2", "Mary", "m", rooms=True)
        hugo = room.join("c3", "Hugo", "h", rooms=True)
        dev = room.rooms.create("dev", "t")
        dev.topic = "the build \u2028 is réd"
        secret = room.rooms.create("secret", "t")
        secret.private = True
        secret.invited.add("m")
        room.rooms.create("random", "h")
        room.enter(tony, dev)
        room.enter(tony, secret)
        room.exit(hugo, room.default)

        def expected(member: Member) -> bytes:
            listing = room.rooms.listing(member.uid)
            return encode(rooms_payload(listing), Framing.NATIVE)

        members = [tony, mary, hugo]
        got = dict(room.rooms.encoded_listings(members))
        self.assertEqual(list(got), members)
        for member in members:
            self.assertEqual(got[member], expected(member), member.uid)
        # Tony in dev and secret, Mary invited to secret, Hugo out of general.
        self.assertIn(b'"ROOM":"secret","TOPIC":"","COUNT":1,"IN":true', got[tony])
        self.assertIn(b'"ROOM":"secret","TOPIC":"","COUNT":1,"IN":false', got[mary])
        self.assertNotIn(b"secret", got[hugo])
        self.assertIn(b'"ROOM":"general","TOPIC":"","COUNT":2,"IN":false', got[hugo])
        self.assertIn("the build \\u2028 is réd".encode(), got[mary])
        # A new count or topic is encoded again; the rest is as before.
        dev.topic = "green"
        room.enter(mary, dev)
        got = dict(room.rooms.encoded_listings(members))
        for member in members:
            self.assertEqual(got[member], expected(member), member.uid)
        self.assertIn(b'"ROOM":"dev","TOPIC":"green","COUNT":2,"IN":true', got[mary])


class ByCapabilityTests(SynchronousTestCase):
    def test_one_object_per_kind_of_client(self) -> None:
        plain = Member("Hugo", "h", None)
        roomy = Member("Tony", "t", None, rooms=True)
        payload = {"CMD": "LIST", "DATA": []}
        tagged = {"CMD": "LIST", "DATA": [], "ROOM": "general"}
        self.assertEqual(
            by_capability(payload, [plain], "general"), [(payload, [plain])]
        )
        self.assertEqual(
            by_capability(payload, [roomy], "general"), [(tagged, [roomy])]
        )
        self.assertEqual(
            by_capability(payload, [roomy, plain], "general"),
            [(payload, [plain]), (tagged, [roomy])],
        )
        # The original object is untouched.
        self.assertEqual(payload, {"CMD": "LIST", "DATA": []})

    def test_a_fresh_room_is_empty_and_public(self) -> None:
        room = ChatRoom("dev", "t")
        self.assertEqual(
            (len(room), room.topic, room.private, room.slow), (0, "", False, 0)
        )
