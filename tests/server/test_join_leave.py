"""Joining and leaving the room, on in-memory transports: ACK, LIST, refusals."""

from __future__ import annotations

from twisted.logger import capturedLogs

from tests.support import (
    OKAY,
    MemoryServer,
    join,
    roster,
    send,
)
from tests.support.server import (
    HENRY,
    MARY,
    TONY,
    ServerTestCase,
)


class JoinTests(ServerTestCase):
    def test_join_gets_one_okay_then_the_list(self) -> None:
        tony = self.server.connect()
        tony.send_json(join(*TONY))
        self.assertEqual(tony.take(), [OKAY, roster(TONY)])

    def test_list_in_join_order_goes_to_every_peer_including_newcomer(self) -> None:
        tony, mary = self.joined(TONY, MARY)
        henry = self.server.connect()
        henry.send_json(join(*HENRY))
        self.assertEqual(henry.take(), [OKAY, roster(TONY, MARY, HENRY)])
        self.assertEqual(tony.take(), [roster(TONY, MARY, HENRY)])
        self.assertEqual(mary.take(), [roster(TONY, MARY, HENRY)])

    def test_list_does_not_go_to_connections_that_never_joined(self) -> None:
        lurker = self.server.connect()
        self.joined(TONY)
        self.assertEqual(lurker.take(), [])

    def test_duplicate_uid_fails_and_first_session_is_untouched(self) -> None:
        (tony,) = self.joined(TONY)
        other = self.server.connect()
        other.send_json(join("Impostor", TONY[1]))
        (ack,) = other.take()
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "UID_TAKEN"))
        self.assertIn(TONY[1], ack["REASON"])
        self.assertEqual(tony.take(), [])
        self.assertFalse(tony.closed_by_server)
        self.assertFalse(other.closed_by_server)
        mary = self.server.connect()
        mary.send_json(join(*MARY))
        self.assertEqual(mary.take(), [OKAY, roster(TONY, MARY)])

    def test_duplicate_nickname_fails(self) -> None:
        (tony,) = self.joined(TONY)
        other = self.server.connect()
        other.send_json(join("Tony", "other@hku.hk"))
        (ack,) = other.take()
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "NICK_TAKEN"))
        self.assertTrue(ack["REASON"])
        self.assertEqual(tony.take(), [])

    def test_refused_connection_can_join_again_with_other_fields(self) -> None:
        self.joined(TONY)
        other = self.server.connect()
        other.send_json(join("Tony", "other@hku.hk"))
        other.take()
        other.send_json(join("Other", "other@hku.hk"))
        self.assertEqual(other.take(), [OKAY, roster(TONY, ("Other", "other@hku.hk"))])

    def test_every_invalid_field_gets_one_bad_join(self) -> None:
        bad = [
            {"CMD": "JOIN", "UID": "a"},
            {"CMD": "JOIN", "UN": "A"},
            join("", "a"),
            join("A", ""),
            join(5, "a"),
            join("A", 5),
            join(None, "a"),
            join(["A"], "a"),
            join("A" * 65, "a"),
            join("A", "a" * 255),
            join(" A", "a"),
            join("A ", "a"),
            join("A,B", "a"),
            join("ALL", "a"),
            join("A", "a", PASS=5),
        ]
        peer = self.server.connect()
        for obj in bad:
            peer.send_json(obj)
            (ack,) = peer.take()
            self.assertEqual(
                (ack["CMD"], ack["TYPE"], ack["CODE"]), ("ACK", "FAIL", "BAD_JOIN"), obj
            )
            self.assertTrue(ack["REASON"], obj)
        self.assertEqual(len(self.server.factory.room), 0)

    def test_second_join_on_a_joined_connection_is_already_joined(self) -> None:
        (tony,) = self.joined(TONY)
        for second in (join("Tony2", "t2@hku.hk"), join(*TONY), {"CMD": "JOIN"}):
            tony.send_json(second)
            (ack,) = tony.take()
            self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "ALREADY_JOINED"))
        self.assertEqual([m.uid for m in self.server.factory.room.members()], [TONY[1]])

    def test_full_server_fails_join(self) -> None:
        server = MemoryServer(capacity=1)
        self.addCleanup(server.stop)
        first = server.connect()
        first.send_json(join(*TONY))
        second = server.connect()
        second.send_json(join(*MARY))
        (ack,) = second.take()
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "SERVER_FULL"))

    def test_already_joined_refusal_is_logged(self) -> None:
        (tony,) = self.joined(TONY)
        with capturedLogs() as events:
            tony.send_json(join("Other", "other@hku.hk"))
        self.assertEqual([e.get("code") for e in events], ["ALREADY_JOINED"])
        self.assertEqual(events[0]["uid"], "other@hku.hk")

    def test_join_and_refusal_are_logged_with_uid_and_peer(self) -> None:
        with capturedLogs() as events:
            self.joined(TONY)
            other = self.server.connect()
            other.send_json(join("Tony", "x@hku.hk"))
        texts = [e["log_format"] for e in events]
        self.assertEqual(len(events), 2, texts)
        self.assertEqual(events[0]["uid"], TONY[1])
        self.assertEqual(events[1]["uid"], "x@hku.hk")
        self.assertEqual(events[1]["code"], "NICK_TAKEN")
        for event in events:
            self.assertRegex(event["peer"], r"^127\.0\.0\.1:\d+$")


class LeaveTests(ServerTestCase):
    def test_leave_sends_list_to_everyone_left(self) -> None:
        tony, mary, henry = self.joined(TONY, MARY, HENRY)
        mary.lose()
        self.assertEqual(tony.take(), [roster(TONY, HENRY)])
        self.assertEqual(henry.take(), [roster(TONY, HENRY)])
        self.assertEqual(len(self.server.factory.room), 2)

    def test_never_joined_connection_is_released_silently(self) -> None:
        tony, mary = self.joined(TONY, MARY)
        lurker = self.server.connect()
        lurker.send_json(send("hi", [], "x"))
        refused = self.server.connect()
        refused.send_json(join("Tony", "z"))
        with capturedLogs() as events:
            lurker.lose()
            refused.lose()
        self.assertEqual(tony.take() + mary.take(), [])
        self.assertEqual(list(events), [])

    def test_leave_is_logged_without_message_text(self) -> None:
        tony, mary = self.joined(TONY, MARY)
        with capturedLogs() as events:
            tony.send_json(send("secret words", [MARY[1]], TONY[1]))
            tony.lose()
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["uid"], TONY[1])
        self.assertNotIn("secret", repr(events[0]))

    def test_rejoin_after_leave_goes_last(self) -> None:
        tony, mary = self.joined(TONY, MARY)
        tony.lose()
        mary.take()
        tony = self.server.connect()
        tony.send_json(join(*TONY))
        self.assertEqual(tony.take(), [OKAY, roster(MARY, TONY)])
        self.assertEqual(mary.take(), [roster(MARY, TONY)])

    def test_server_never_closes_well_behaved_connections(self) -> None:
        peers = self.joined(TONY, MARY)
        peers[0].send_json(send("hi", [], TONY[1]))
        peers[1].send_json(send("bye", [TONY[1]], MARY[1]))
        peers[1].send_json(send("oops", ["ghost"], MARY[1]))
        self.assertFalse(any(p.closed_by_server for p in peers))
