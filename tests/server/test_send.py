"""Sending messages on in-memory transports: private, group, broadcast, errors."""

from __future__ import annotations

import json
from typing import Any

from tests.support import (
    join,
    msg,
    send,
)
from tests.support.server import (
    HENRY,
    MARY,
    PETER,
    TONY,
    ServerTestCase,
    without_ts,
)


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

    def test_timestamp_is_the_clocks_time_in_integer_milliseconds(self) -> None:
        # The fake clock, not the machine's: 1,234.5 s after it started.
        self.server.clock.advance(1234.5 - self.server.clock.seconds())
        self.henry.send_json(send("hi", [TONY[1]], HENRY[1]))
        (delivered,) = self.tony.take()
        self.assertIsInstance(delivered["TS"], int)
        self.assertEqual(delivered["TS"], 1_234_500)

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
        # A full token bucket (see muca.server.limits): 50 messages at once pass.
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
