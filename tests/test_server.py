"""Protocol tests of muca.server on in-memory transports (no sockets)."""

from __future__ import annotations

import json
import random
from typing import Any

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from muca.connection import ChatProtocol
from tests.support import (
    OKAY,
    MemoryPeer,
    MemoryServer,
    join,
    msg,
    roster,
    send,
    strip_ts,
)

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")
PETER = ("Peter", "peter@hku.hk")


def without_ts(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects with the optional ``TS`` extension removed."""
    return [strip_ts(obj) for obj in objects]


class ServerTestCase(SynchronousTestCase):
    """A fresh in-memory server per test, and helpers to join peers."""

    def setUp(self) -> None:
        self.server = MemoryServer()
        self.addCleanup(self.server.stop)

    def joined(self, *who: tuple[str, str]) -> list[MemoryPeer]:
        """Join each (nickname, uid) on its own connection, in order; drain them."""
        peers = []
        for nickname, uid in who:
            peer = self.server.connect()
            peer.send_json(join(nickname, uid))
            self.assertEqual(peer.take()[0], OKAY)
            peers.append(peer)
        for peer in peers:
            peer.take()
        return peers

    def assertError(
        self, objects: list[Any], code: str, ref: str | None = None
    ) -> None:
        """Exactly one ERROR with this code (and REF, when given)."""
        self.assertEqual(len(objects), 1, objects)
        (error,) = objects
        self.assertEqual((error["CMD"], error["CODE"]), ("ERROR", code), error)
        self.assertIsInstance(error["REASON"], str)
        self.assertTrue(error["REASON"])
        if ref is not None:
            self.assertEqual(error.get("REF"), ref)


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


class SendTests(ServerTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.tony, self.mary, self.henry, self.peter = self.joined(
            TONY, MARY, HENRY, PETER
        )
        self.everyone = [self.tony, self.mary, self.henry, self.peter]

    def takes(self) -> list[list[Any]]:
        """What each of the four got, TS removed."""
        return [without_ts(peer.take()) for peer in self.everyone]

    def test_broadcast_reaches_everyone_else_as_all(self) -> None:
        self.mary.send_json(send("hello all", [], MARY[1]))
        expected = [msg("ALL", "hello all", MARY[1])]
        self.assertEqual(self.takes(), [expected, [], expected, expected])

    def test_one_recipient_is_private(self) -> None:
        self.mary.send_json(send("psst", [TONY[1]], MARY[1]))
        self.assertEqual(self.takes(), [[msg("PRIVATE", "psst", MARY[1])], [], [], []])

    def test_several_recipients_are_group_with_to(self) -> None:
        self.mary.send_json(send("we", [PETER[1], TONY[1]], MARY[1]))
        expected = [msg("GROUP", "we", MARY[1], [PETER[1], TONY[1]])]
        self.assertEqual(self.takes(), [expected, [], [], expected])

    def test_duplicates_in_to_are_delivered_once(self) -> None:
        self.mary.send_json(send("once", [TONY[1], TONY[1]], MARY[1]))
        self.assertEqual(self.takes(), [[msg("PRIVATE", "once", MARY[1])], [], [], []])

    def test_own_id_in_to_is_dropped(self) -> None:
        self.mary.send_json(send("x", [MARY[1], TONY[1]], MARY[1]))
        self.assertEqual(self.takes(), [[msg("PRIVATE", "x", MARY[1])], [], [], []])

    def test_own_id_only_is_no_recipient_not_broadcast(self) -> None:
        self.mary.send_json(send("me", [MARY[1]], MARY[1]))
        got = [peer.take() for peer in self.everyone]
        self.assertEqual(got[0] + got[2] + got[3], [])
        self.assertError(got[1], "NO_RECIPIENT", "SEND")

    def test_unknown_ids_are_named_and_known_still_get_it(self) -> None:
        self.mary.send_json(send("hey", ["ghost@x", HENRY[1], "nobody@x"], MARY[1]))
        got = [peer.take() for peer in self.everyone]
        self.assertEqual(without_ts(got[2]), [msg("GROUP", "hey", MARY[1], [HENRY[1]])])
        self.assertEqual(got[0] + got[3], [])
        self.assertError(got[1], "UNKNOWN_RECIPIENT", "SEND")
        self.assertIn("ghost@x", got[1][0]["REASON"])
        self.assertIn("nobody@x", got[1][0]["REASON"])
        self.assertNotIn(HENRY[1], got[1][0]["REASON"])

    def test_only_unknown_ids_deliver_nothing_and_name_them(self) -> None:
        self.mary.send_json(send("hey", ["ghost@x"], MARY[1]))
        got = [peer.take() for peer in self.everyone]
        self.assertEqual(got[0] + got[2] + got[3], [])
        self.assertError(got[1], "UNKNOWN_RECIPIENT", "SEND")
        self.assertIn("ghost@x", got[1][0]["REASON"])

    def test_forged_from_is_refused_and_nothing_delivered(self) -> None:
        self.mary.send_json(send("I am Tony", [], TONY[1]))
        got = [peer.take() for peer in self.everyone]
        self.assertEqual(got[0] + got[2] + got[3], [])
        self.assertError(got[1], "FROM_MISMATCH", "SEND")

    def test_delivered_from_is_the_joined_id(self) -> None:
        self.henry.send_json(send("hi", [], HENRY[1]))
        for got in (self.tony.take(), self.peter.take()):
            self.assertEqual(got[0]["FROM"], HENRY[1])

    def test_timestamp_is_integer_milliseconds(self) -> None:
        self.henry.send_json(send("hi", [TONY[1]], HENRY[1]))
        (delivered,) = self.tony.take()
        self.assertIsInstance(delivered["TS"], int)
        self.assertGreater(delivered["TS"], 1_600_000_000_000)

    def test_send_before_join_is_not_joined(self) -> None:
        lurker = self.server.connect()
        lurker.send_json(send("hi", [], TONY[1]))
        self.assertError(lurker.take(), "NOT_JOINED", "SEND")
        self.assertEqual(sum((p.take() for p in self.everyone), []), [])

    def test_send_after_refused_join_is_not_joined(self) -> None:
        lurker = self.server.connect()
        lurker.send_json(join(*TONY))
        lurker.take()
        lurker.send_json(send("hi", [], TONY[1]))
        self.assertError(lurker.take(), "NOT_JOINED", "SEND")

    def test_messages_from_one_sender_arrive_in_order(self) -> None:
        data = b"".join(
            json.dumps(send(f"m{i}", [] if i % 2 else [TONY[1]], MARY[1])).encode()
            + b"\n"
            for i in range(50)
        )
        # A full token bucket (see muca.limits): 50 messages at once pass.
        self.server.clock.advance(5)
        self.mary.send(data)
        self.assertEqual(
            [m["MSG"] for m in self.tony.take()], [f"m{i}" for i in range(50)]
        )
        self.assertEqual(
            [m["MSG"] for m in self.henry.take()], [f"m{i}" for i in range(1, 50, 2)]
        )

    def test_message_to_a_peer_who_left_is_unknown_recipient(self) -> None:
        self.peter.lose()
        for peer in self.everyone[:3]:
            peer.take()
        self.mary.send_json(send("late", [PETER[1]], MARY[1]))
        self.assertError(self.mary.take(), "UNKNOWN_RECIPIENT", "SEND")

    def test_fan_out_writes_the_same_bytes_object_to_every_recipient(self) -> None:
        for peer in self.everyone:
            peer.transport.writes.clear()
        self.mary.send_json(send("shared", [], MARY[1]))
        self.server.clock.advance(0)  # fan-out is written at the turn's end
        writes = [peer.transport.writes for peer in (self.tony, self.henry, self.peter)]
        self.assertEqual([len(w) for w in writes], [1, 1, 1])
        self.assertIs(writes[0][0], writes[1][0])
        self.assertIs(writes[0][0], writes[2][0])

    def test_one_turns_fan_out_reaches_a_connection_in_one_write(self) -> None:
        for peer in self.everyone:
            peer.transport.writes.clear()
        self.mary.send_json(send("one", [], MARY[1]))
        self.henry.send_json(send("two", [], HENRY[1]))
        self.server.clock.advance(0)  # the end of the reactor turn
        self.assertEqual(len(self.tony.transport.writes), 1)
        got = without_ts(self.tony.take())
        self.assertEqual(got, [msg("ALL", "one", MARY[1]), msg("ALL", "two", HENRY[1])])

    def test_a_reply_never_overtakes_fan_out_queued_in_the_same_turn(self) -> None:
        self.mary.send_json(send("first", [], MARY[1]))
        self.tony.send(b"not json\n")
        got = without_ts(self.tony.take())
        self.assertEqual(got[0], msg("ALL", "first", MARY[1]))
        self.assertEqual(got[1]["CODE"], "BAD_JSON")

    def test_roster_fan_out_writes_the_same_bytes_object(self) -> None:
        for peer in self.everyone:
            peer.transport.writes.clear()
        self.peter.lose()
        self.server.clock.advance(0)
        writes = [peer.transport.writes for peer in self.everyone[:3]]
        self.assertEqual([len(w) for w in writes], [1, 1, 1])
        self.assertIs(writes[0][0], writes[1][0])
        self.assertIs(writes[0][0], writes[2][0])


class FramingTests(ServerTestCase):
    """Output framing follows the first object; input framing is free."""

    def test_newline_after_first_object_gives_native_output(self) -> None:
        peer = self.server.connect()
        peer.send(json.dumps(join(*TONY)).encode() + b"\n")
        self.assertEqual(
            peer.take_bytes(),
            b'{"CMD":"ACK","TYPE":"OKAY"}\n'
            b'{"CMD":"LIST","DATA":[{"UN":"Tony","UID":"tony@hku.hk"}]}\n',
        )

    def test_nothing_after_first_object_gives_original_output(self) -> None:
        peer = self.server.connect()
        peer.send(json.dumps(join(*TONY)).encode())
        self.assertEqual(
            peer.take_bytes(),
            b'{"CMD": "ACK", "TYPE": "OKAY"}'
            b'{"CMD": "LIST", "DATA": [{"UN": "Tony", "UID": "tony@hku.hk"}]}',
        )

    def test_object_after_first_object_gives_original_output(self) -> None:
        tony = self.server.connect()
        tony.send(
            json.dumps(join(*TONY)).encode()
            + json.dumps(send("x", [], TONY[1])).encode()
        )
        data = tony.take_bytes()
        self.assertNotIn(b"\n", data)
        self.assertTrue(data.startswith(b'{"CMD": "ACK", "TYPE": "OKAY"}{'))

    def test_v2_join_gives_native_output_even_back_to_back(self) -> None:
        peer = self.server.connect()
        peer.send(json.dumps(join(*TONY, V=2)).encode())
        data = peer.take_bytes()
        self.assertEqual(data.count(b"\n"), 2)
        self.assertTrue(data.startswith(b'{"CMD":"ACK","TYPE":"OKAY"}\n'))

    def test_framing_is_decided_once_per_connection(self) -> None:
        peer = self.server.connect()
        peer.send(json.dumps(join(*TONY)).encode())
        peer.take()
        peer.send(b'\n{"CMD": "NOPE"}\n')
        self.assertNotIn(b"\n", peer.take_bytes())

    def test_first_frame_error_decides_framing_too(self) -> None:
        native = self.server.connect()
        native.send(b"nonsense\n")
        self.assertTrue(native.take_bytes().endswith(b"}\n"))
        original = self.server.connect()
        original.send(b'{"CMD": 1}{"CMD": 2}')
        self.assertNotIn(b"\n", original.take_bytes())

    def test_each_recipient_gets_its_own_framing(self) -> None:
        native = self.server.connect()
        native.send(json.dumps(join(*TONY)).encode() + b"\n")
        original = self.server.connect()
        original.send(json.dumps(join(*MARY)).encode())
        native.take(), original.take()
        native.send_json(send("a}{b ü", [], TONY[1]))
        data = original.take_bytes()
        self.assertTrue(data.isascii())
        self.assertNotIn(b"}{", data)
        self.assertNotIn(b"\n", data)
        self.assertEqual(json.loads(data)["MSG"], "a}{b ü")
        original.send(json.dumps(send("c}{d ü", [], MARY[1])).encode())
        data = native.take_bytes()
        self.assertTrue(data.endswith(b"\n"))
        self.assertIn("c}{d ü".encode(), data)

    def test_native_peer_may_send_original_framing_later(self) -> None:
        tony, mary = self.joined(TONY, MARY)
        tony.send(
            json.dumps(send("one", [], TONY[1])).encode()
            + json.dumps(send("two", [], TONY[1])).encode()
        )
        self.assertEqual([m["MSG"] for m in mary.take()], ["one", "two"])


class UnicodeTests(ServerTestCase):
    text = 'héllo wörld — 你好 😀 "q" \\ }{'

    def test_utf8_text_is_delivered_intact_to_both_framings(self) -> None:
        tony, mary = self.joined(TONY, MARY)
        henry = self.server.connect()
        henry.send(json.dumps(join(*HENRY)).encode())  # original framing
        henry.take(), tony.take(), mary.take()
        tony.send_json(send(self.text, [], TONY[1]))
        self.assertEqual(mary.take()[0]["MSG"], self.text)
        self.assertEqual(json.loads(henry.take_bytes())["MSG"], self.text)

    def test_escapes_from_an_ascii_peer_decode_to_the_same_text(self) -> None:
        tony, mary = self.joined(TONY, MARY)
        data = json.dumps(send(self.text, [MARY[1]], TONY[1]), ensure_ascii=True)
        self.assertTrue(data.isascii())
        tony.send(data.encode())
        self.assertEqual(mary.take()[0]["MSG"], self.text)

    def test_native_output_is_raw_utf8(self) -> None:
        tony, mary = self.joined(TONY, MARY)
        tony.send_json(send(self.text, [MARY[1]], TONY[1]))
        self.assertIn(
            self.text.replace("\\", "\\\\").replace('"', '\\"').encode(),
            mary.take_bytes(),
        )

    def test_unicode_nickname_and_uid_in_list(self) -> None:
        peer = self.server.connect()
        peer.send_json(join("Zoë 😀", "zoë@例え.jp"))
        self.assertEqual(peer.take(), [OKAY, roster(("Zoë 😀", "zoë@例え.jp"))])

    def test_lone_surrogates_are_refused_not_crashing(self) -> None:
        (tony,) = self.joined(TONY)
        for raw in (
            b'{"CMD": "SEND", "MSG": "\\ud800", "TO": [], "FROM": "tony@hku.hk"}\n',
            b'{"CMD": "SEND", "MSG": "x", "TO": ["\\udfff"], "FROM": "tony@hku.hk"}\n',
            b'{"CMD": "\\ud800"}\n',
        ):
            tony.send(raw)
            self.assertError(tony.take(), "BAD_COMMAND")
        peer = self.server.connect()
        peer.send(b'{"CMD": "JOIN", "UN": "\\ud800", "UID": "s"}\n')
        self.assertEqual(peer.take()[0]["CODE"], "BAD_JOIN")


class BadInputTests(ServerTestCase):
    def test_invalid_json_is_bad_json(self) -> None:
        peer = self.server.connect()
        for raw in (b"{not json}\n", b'{"a": 1,}\n', b'{"a": "\xff"}\n', b"hello\n"):
            peer.send(raw)
            self.assertError(peer.take(), "BAD_JSON")
        self.assertFalse(peer.closed_by_server)

    def test_non_objects_are_bad_json(self) -> None:
        peer = self.server.connect()
        for raw in (b"[]\n", b"42\n", b'"JOIN"\n', b"null\n"):
            peer.send(raw)
            self.assertError(peer.take(), "BAD_JSON")

    def test_array_of_commands_is_one_error_and_not_executed(self) -> None:
        peer = self.server.connect()
        peer.send(b"[" + json.dumps(join(*TONY)).encode() + b"]\n")
        self.assertError(peer.take(), "BAD_JSON")
        self.assertEqual(len(self.server.factory.room), 0)

    def test_unknown_or_missing_cmd_is_bad_command(self) -> None:
        (tony,) = self.joined(TONY)
        for obj in (
            {"CMD": "DANCE"},
            {"UN": "x"},
            {"CMD": 7},
            {"CMD": "LIST", "DATA": []},
        ):
            tony.send_json(obj)
            self.assertError(tony.take(), "BAD_COMMAND")

    def test_ill_typed_send_fields_are_bad_command(self) -> None:
        (tony,) = self.joined(TONY)
        for obj in (
            {"CMD": "SEND", "TO": [], "FROM": TONY[1]},
            send(5, [], TONY[1]),
            {"CMD": "SEND", "MSG": "x", "TO": "all", "FROM": TONY[1]},
            send("x", [1], TONY[1]),
            {"CMD": "SEND", "MSG": "x", "TO": []},
        ):
            tony.send_json(obj)
            self.assertError(tony.take(), "BAD_COMMAND", "SEND")

    def test_bad_input_then_good_input_still_works(self) -> None:
        tony, mary = self.joined(TONY, MARY)
        tony.send(
            b'garbage\n{"CMD": "SEND", "MSG": 1}\n'
            + json.dumps(send("ok", [], TONY[1])).encode()
            + b"\n"
        )
        got = tony.take()
        self.assertEqual([o["CODE"] for o in got], ["BAD_JSON", "BAD_COMMAND"])
        self.assertEqual(mary.take()[0]["MSG"], "ok")

    def test_frame_too_long_gets_error_then_close(self) -> None:
        server = MemoryServer(max_frame=200)
        self.addCleanup(server.stop)
        tony, mary = server.connect(), server.connect()
        tony.send_json(join(*TONY))
        mary.send_json(join(*MARY))
        tony.take(), mary.take()
        tony.send(b'{"CMD": "SEND", "MSG": "' + b"x" * 300)
        self.assertError(tony.take(), "FRAME_TOO_LONG")
        self.assertTrue(tony.closed_by_server)
        # Input after the close is ignored; the others see only the leave.
        tony.send(b'", "TO": [], "FROM": "tony@hku.hk"}\n')
        self.assertEqual(tony.take(), [])
        tony.lose()
        self.assertEqual(mary.take(), [roster(MARY)])

    def test_frame_too_long_before_any_frame_is_native_error(self) -> None:
        server = MemoryServer(max_frame=50)
        self.addCleanup(server.stop)
        peer = server.connect()
        peer.send(b"{" + b" " * 100)
        data = peer.take_bytes()
        self.assertTrue(data.endswith(b"}\n"))
        self.assertEqual(json.loads(data)["CODE"], "FRAME_TOO_LONG")

    def test_frame_of_exactly_the_limit_is_accepted(self) -> None:
        server = MemoryServer(max_frame=100)
        self.addCleanup(server.stop)
        tony, mary = server.connect(), server.connect()
        tony.send_json(join(*TONY))
        mary.send_json(join(*MARY))
        tony.take(), mary.take()
        empty = json.dumps(send("", [], TONY[1]), separators=(",", ":"))
        text = "x" * (100 - len(empty))
        frame = json.dumps(send(text, [], TONY[1]), separators=(",", ":"))
        self.assertEqual(len(frame), 100)
        tony.send(frame.encode() + b"\r\n")
        self.assertEqual(mary.take()[0]["MSG"], text)
        self.assertFalse(tony.closed_by_server)

    def test_random_bytes_never_raise_and_others_do_not_notice(self) -> None:
        rng = random.Random(7)
        tony, mary = self.joined(TONY, MARY)
        alphabet = b'{}[]",:\\ \n\r\tabcCMDJOINSEND\x00\xff\xc3\xa9u0123456789'
        for _ in range(200):
            peer = self.server.connect()
            data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 200)))
            for start in range(0, len(data), 17):
                peer.send(data[start : start + 17])
            peer.take()
            peer.lose()
        tony.send_json(send("still here", [], TONY[1]))
        self.assertEqual(without_ts(mary.take()), [msg("ALL", "still here", TONY[1])])
        self.assertEqual(tony.take(), [])

    def test_frames_after_join_in_the_same_segment_are_handled(self) -> None:
        tony = self.server.connect()
        mary = self.server.connect()
        mary.send_json(join(*MARY))
        mary.take()
        tony.send(
            (
                json.dumps(join(*TONY))
                + "\n"
                + json.dumps(send("first", [], TONY[1]))
                + "\n"
            ).encode()
        )
        self.assertEqual(tony.take(), [OKAY, roster(MARY, TONY)])
        # Mary learns who Tony is before his first words.
        got = mary.take()
        self.assertEqual(got[0], roster(MARY, TONY))
        self.assertEqual(got[1]["MSG"], "first")


class ProtocolClassTests(SynchronousTestCase):
    def test_factory_builds_chat_protocols(self) -> None:
        server = MemoryServer()
        self.addCleanup(server.stop)
        self.assertIsInstance(server.connect().protocol, ChatProtocol)
