"""Tests of muca.server.room: the registry, routing rules and roster updates."""

from __future__ import annotations

import random
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from muca.protocol.messages import (
    ALL,
    GROUP,
    NICK_TAKEN,
    NO_RECIPIENT,
    PRIVATE,
    SERVER_FULL,
    UID_TAKEN,
    JoinRefused,
    ProtocolError,
)
from muca.server.room import Member, Room


def entry(member: Member) -> dict[str, str]:
    """The peer-list entry of a member."""
    return {"UN": member.nickname, "UID": member.uid}


def full_list(*members: Member) -> dict[str, Any]:
    """The ``LIST`` of these members, in this order."""
    return {"CMD": "LIST", "DATA": [entry(m) for m in members]}


class RegistryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.room = Room()
        self.tony = self.room.join("c-tony", "Tony", "tony@hku.hk")

    def test_join_adds_member_in_join_order(self) -> None:
        mary = self.room.join("c-mary", "Mary", "mary@hku.hk")
        self.assertEqual(self.room.members(), [self.tony, mary])
        self.assertIn("mary@hku.hk", self.room)
        self.assertIs(self.room.member("mary@hku.hk"), mary)
        self.assertEqual(mary.connection, "c-mary")
        self.assertEqual(len(self.room), 2)

    def test_duplicate_uid_is_refused_and_first_session_untouched(self) -> None:
        with self.assertRaises(JoinRefused) as caught:
            self.room.join("c-other", "Other", "tony@hku.hk")
        self.assertEqual(caught.exception.code, UID_TAKEN)
        self.assertIs(self.room.member("tony@hku.hk"), self.tony)
        self.assertEqual(len(self.room), 1)

    def test_duplicate_nickname_is_refused(self) -> None:
        with self.assertRaises(JoinRefused) as caught:
            self.room.join("c-other", "Tony", "other@hku.hk")
        self.assertEqual(caught.exception.code, NICK_TAKEN)
        self.assertNotIn("other@hku.hk", self.room)

    def test_nickname_is_free_again_after_leave(self) -> None:
        self.assertTrue(self.room.leave(self.tony))
        again = self.room.join("c-new", "Tony", "new@hku.hk")
        self.assertEqual(self.room.members(), [again])

    def test_leave_twice_or_stale_member_is_false(self) -> None:
        self.assertTrue(self.room.leave(self.tony))
        self.assertFalse(self.room.leave(self.tony))
        again = self.room.join("c-again", "Tony", "tony@hku.hk")
        self.assertFalse(self.room.leave(self.tony))
        self.assertIs(self.room.member("tony@hku.hk"), again)

    def test_rejoin_goes_to_the_end_of_the_join_order(self) -> None:
        mary = self.room.join("c-mary", "Mary", "mary@hku.hk")
        self.room.leave(self.tony)
        tony = self.room.join("c-tony2", "Tony", "tony@hku.hk")
        self.assertEqual(self.room.members(), [mary, tony])

    def test_full_room_refuses_join(self) -> None:
        room = Room(capacity=1)
        room.join("c", "A", "a")
        with self.assertRaises(JoinRefused) as caught:
            room.join("d", "B", "b")
        self.assertEqual(caught.exception.code, SERVER_FULL)


class RouteTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.room = Room()
        self.tony = self.room.join("c1", "Tony", "tony")
        self.mary = self.room.join("c2", "Mary", "mary")
        self.henry = self.room.join("c3", "Henry", "henry")
        self.peter = self.room.join("c4", "Peter", "peter")

    def test_empty_to_is_broadcast_to_everyone_else(self) -> None:
        route = self.room.route(self.mary, [])
        self.assertEqual(route.kind, ALL)
        self.assertEqual(route.recipients, [self.tony, self.henry, self.peter])
        self.assertEqual(route.unknown, ())

    def test_broadcast_from_a_lone_member_reaches_nobody_without_error(self) -> None:
        room = Room()
        alone = room.join("c", "A", "a")
        route = room.route(alone, [])
        self.assertEqual((route.kind, route.recipients), (ALL, []))

    def test_one_id_is_private(self) -> None:
        route = self.room.route(self.mary, ["tony"])
        self.assertEqual((route.kind, route.recipients), (PRIVATE, [self.tony]))

    def test_several_ids_are_group_in_to_order(self) -> None:
        route = self.room.route(self.mary, ["peter", "tony"])
        self.assertEqual(
            (route.kind, route.recipients), (GROUP, [self.peter, self.tony])
        )

    def test_duplicate_ids_count_once(self) -> None:
        route = self.room.route(self.mary, ["tony", "tony"])
        self.assertEqual((route.kind, route.recipients), (PRIVATE, [self.tony]))
        route = self.room.route(self.mary, ["tony", "henry", "tony"])
        self.assertEqual(
            (route.kind, route.recipients), (GROUP, [self.tony, self.henry])
        )

    def test_own_id_is_dropped(self) -> None:
        route = self.room.route(self.mary, ["mary", "tony"])
        self.assertEqual((route.kind, route.recipients), (PRIVATE, [self.tony]))
        route = self.room.route(self.mary, ["mary", "tony", "henry"])
        self.assertEqual(
            (route.kind, route.recipients), (GROUP, [self.tony, self.henry])
        )

    def test_own_id_only_is_no_recipient_not_broadcast(self) -> None:
        for to in (["mary"], ["mary", "mary"]):
            with self.assertRaises(ProtocolError) as caught:
                self.room.route(self.mary, to)
            self.assertEqual(caught.exception.code, NO_RECIPIENT)

    def test_unknown_ids_are_reported_and_known_still_get_it(self) -> None:
        route = self.room.route(self.mary, ["ghost", "tony", "nobody", "ghost"])
        self.assertEqual(route.kind, GROUP)
        self.assertEqual(route.recipients, [self.tony])
        self.assertEqual(route.unknown, ("ghost", "nobody"))

    def test_only_unknown_ids_deliver_nothing(self) -> None:
        route = self.room.route(self.mary, ["ghost"])
        self.assertEqual(
            (route.kind, route.recipients, route.unknown), (PRIVATE, [], ("ghost",))
        )

    def test_own_id_and_unknown_is_not_no_recipient(self) -> None:
        route = self.room.route(self.mary, ["mary", "ghost"])
        self.assertEqual((route.recipients, route.unknown), ([], ("ghost",)))

    def test_member_who_left_is_unknown(self) -> None:
        self.room.leave(self.tony)
        route = self.room.route(self.mary, ["tony", "henry"])
        self.assertEqual((route.recipients, route.unknown), ([self.henry], ("tony",)))
        self.assertNotIn(self.tony, self.room.route(self.mary, []).recipients)

    def test_ids_and_nicknames_are_case_sensitive(self) -> None:
        route = self.room.route(self.mary, ["TONY"])
        self.assertEqual(route.unknown, ("TONY",))

    def test_a_nickname_that_is_no_user_id_means_its_member(self) -> None:
        route = self.room.route(self.mary, ["Tony"])
        self.assertEqual((route.kind, route.recipients), (PRIVATE, [self.tony]))
        route = self.room.route(self.mary, ["Peter", "henry"])
        self.assertEqual(
            (route.kind, route.recipients, route.unknown),
            (GROUP, [self.peter, self.henry], ()),
        )

    def test_a_member_named_by_id_and_nickname_counts_once(self) -> None:
        route = self.room.route(self.mary, ["tony", "Tony"])
        self.assertEqual((route.kind, route.recipients), (PRIVATE, [self.tony]))

    def test_a_user_id_wins_over_a_nickname(self) -> None:
        room = Room()
        sender = room.join("c0", "S", "s")
        named = room.join("c1", "bob", "robert")
        # Refused at JOIN now (test_identity), but routing holds regardless.
        bob = room.join("c2", "Bobby", "bob", decided=True)
        route = room.route(sender, ["bob"])
        self.assertEqual(route.recipients, [bob])
        self.assertNotEqual(route.recipients, [named])

    def test_own_nickname_is_dropped_like_own_id(self) -> None:
        with self.assertRaises(ProtocolError) as caught:
            self.room.route(self.mary, ["Mary"])
        self.assertEqual(caught.exception.code, NO_RECIPIENT)

    def test_all_means_everyone(self) -> None:
        for to in (["ALL"], ["ALL", "tony"]):
            route = self.room.route(self.mary, to)
            self.assertEqual(route.kind, ALL)
            self.assertEqual(route.recipients, [self.tony, self.henry, self.peter])
            self.assertEqual(route.unknown, ())

    def test_a_nickname_that_left_is_unknown(self) -> None:
        self.room.leave(self.tony)
        self.assertEqual(self.room.route(self.mary, ["Tony"]).unknown, ("Tony",))


class RosterUpdateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.room = Room()

    def test_no_change_no_update(self) -> None:
        self.assertIsNone(self.room.take_roster_update())
        self.room.join("c", "A", "a")
        self.assertIsNotNone(self.room.take_roster_update())
        self.assertIsNone(self.room.take_roster_update())

    def test_join_sends_full_list_to_everyone_including_newcomer(self) -> None:
        tony = self.room.join("c1", "Tony", "tony")
        self.room.take_roster_update()
        mary = self.room.join("c2", "Mary", "mary")
        update = self.room.take_roster_update()
        self.assertEqual(update.full_list, full_list(tony, mary))
        self.assertEqual(update.list_recipients, [tony, mary])
        self.assertIsNone(update.delta)

    def test_leave_sends_full_list_to_the_rest(self) -> None:
        tony = self.room.join("c1", "Tony", "tony")
        mary = self.room.join("c2", "Mary", "mary")
        self.room.take_roster_update()
        self.room.leave(tony)
        update = self.room.take_roster_update()
        self.assertEqual(update.full_list, full_list(mary))
        self.assertEqual(update.list_recipients, [mary])

    def test_presence_member_gets_one_list_then_deltas(self) -> None:
        tony = self.room.join("c1", "Tony", "tony")
        pat = self.room.join("c2", "Pat", "pat", presence=True)
        self.assertTrue(self.room.is_pending_join(pat))
        update = self.room.take_roster_update()
        self.assertEqual(update.list_recipients, [tony, pat])
        self.assertEqual(update.full_list, full_list(tony, pat))
        self.assertIsNone(update.delta)
        self.assertFalse(self.room.is_pending_join(pat))

        mary = self.room.join("c3", "Mary", "mary")
        update = self.room.take_roster_update()
        self.assertEqual(update.list_recipients, [tony, mary])
        self.assertEqual(update.full_list, full_list(tony, pat, mary))
        self.assertEqual(
            update.delta, {"CMD": "PRESENCE", "JOINED": [entry(mary)], "LEFT": []}
        )
        self.assertEqual(update.delta_recipients, [pat])

        self.room.leave(tony)
        update = self.room.take_roster_update()
        self.assertEqual(
            update.delta, {"CMD": "PRESENCE", "JOINED": [], "LEFT": ["tony"]}
        )
        self.assertEqual(update.delta_recipients, [pat])
        self.assertEqual(update.list_recipients, [mary])

    def test_join_and_leave_in_one_window_is_not_announced(self) -> None:
        pat = self.room.join("c1", "Pat", "pat", presence=True)
        self.room.take_roster_update()
        ghost = self.room.join("c2", "Ghost", "ghost")
        self.room.leave(ghost)
        update = self.room.take_roster_update()
        self.assertIsNone(update.delta)
        self.assertEqual(update.delta_recipients, [])
        self.assertEqual(update.full_list, full_list(pat))

    def test_leave_and_rejoin_in_one_window_names_uid_in_both(self) -> None:
        pat = self.room.join("c1", "Pat", "pat", presence=True)
        tony = self.room.join("c2", "Tony", "tony")
        self.room.take_roster_update()
        self.room.leave(tony)
        tony2 = self.room.join("c3", "Anthony", "tony")
        update = self.room.take_roster_update()
        # Applied LEFT first, then JOINED, the delta gives the true list.
        self.assertEqual(
            update.delta,
            {"CMD": "PRESENCE", "JOINED": [entry(tony2)], "LEFT": ["tony"]},
        )
        self.assertEqual(update.full_list, full_list(pat, tony2))
        self.assertEqual(update.list_recipients, [tony2])

    def test_presence_member_leaving_before_its_list_is_forgotten(self) -> None:
        tony = self.room.join("c1", "Tony", "tony")
        self.room.take_roster_update()
        pat = self.room.join("c2", "Pat", "pat", presence=True)
        self.room.leave(pat)
        update = self.room.take_roster_update()
        self.assertEqual(update.list_recipients, [tony])
        pat2 = self.room.join("c3", "Pat", "pat", presence=True)
        update = self.room.take_roster_update()
        self.assertEqual(update.list_recipients, [tony, pat2])

    def test_random_changes_keep_every_view_true(self) -> None:
        """Whatever the joins, leaves and update points, every member's view
        (LIST replaces it; PRESENCE removes LEFT, then appends JOINED) is the
        true list after each update."""
        rng = random.Random(2026)
        for _ in range(30):
            room = Room()
            views: dict[int, list[dict[str, str]]] = {}
            counter = 0
            for _ in range(60):
                members = room.members()
                action = rng.random()
                if action < 0.45 or not members:
                    counter += 1
                    uid = f"u{rng.randrange(8)}"
                    try:
                        room.join(
                            counter, f"N{counter}", uid, presence=rng.random() < 0.5
                        )
                    except JoinRefused:
                        pass
                elif action < 0.8:
                    room.leave(rng.choice(members))
                else:
                    self.apply(room, views)
            self.apply(room, views)

    def apply(self, room: Room, views: dict[int, list[dict[str, str]]]) -> None:
        """Take an update, apply it to every recipient's view, check them."""
        update = room.take_roster_update()
        if update is None:
            return
        for member in update.list_recipients:
            views[member.connection] = list(update.full_list["DATA"])
        for member in update.delta_recipients:
            left = set(update.delta["LEFT"])
            view = [e for e in views[member.connection] if e["UID"] not in left]
            views[member.connection] = view + update.delta["JOINED"]
        truth = [entry(m) for m in room.members()]
        for member in room.members():
            self.assertEqual(views[member.connection], truth)
