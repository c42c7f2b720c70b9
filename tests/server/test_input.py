"""What the server reads: both framings, Unicode, and bad input of every kind."""

from __future__ import annotations

import json
import random

from twisted.trial.unittest import SynchronousTestCase

from muca.server.connection import ChatProtocol
from tests.support import (
    OKAY,
    MemoryServer,
    join,
    msg,
    roster,
    send,
)
from tests.support.server import (
    HENRY,
    MARY,
    TONY,
    ServerTestCase,
    without_ts,
)


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
        self.assertTrue(
            data.startswith(b'{"CMD":"ACK","TYPE":"OKAY","MAX_FRAME":65536}\n')
        )

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

    def test_what_cannot_begin_an_object_is_bad_json_up_to_the_next_brace(
        self,
    ) -> None:
        peer = self.server.connect()
        peer.send(b'[{"CMD": "NOPE"}]\n')
        codes = [obj["CODE"] for obj in peer.take()]
        self.assertEqual(codes, ["BAD_JSON", "BAD_COMMAND", "BAD_JSON"])

    def test_garbage_is_answered_at_once_without_a_newline(self) -> None:
        for garbage in (b"hello", b"42", b"null", b'"JOIN"'):
            peer = self.server.connect()
            peer.send(garbage)
            self.assertError(peer.take(), "BAD_JSON")
            # Dropped once: the rest of it is no second error.
            peer.send(b" more garbage")
            self.assertEqual(peer.take(), [])
            peer.send_json(join(*TONY), newline=False)
            self.assertEqual(peer.take()[0], OKAY)
            peer.lose()

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
        tony.send_json(join(*TONY), newline=False)  # original framing
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
            peer.take_bytes()  # in any framing, a leading NUL included
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


class MaxFrameTests(SynchronousTestCase):
    def test_a_v2_client_is_told_the_longest_frame_and_an_original_one_is_not(
        self,
    ) -> None:
        server = MemoryServer(max_frame=1000)
        self.addCleanup(server.stop)
        native = server.connect()
        native.send_json(join(*TONY, V=2))
        self.assertEqual(
            native.take()[0], {"CMD": "ACK", "TYPE": "OKAY", "MAX_FRAME": 1000}
        )
        original = server.connect()
        original.send_json(join(*MARY), newline=False)
        self.assertTrue(
            original.take_bytes().startswith(b'{"CMD": "ACK", "TYPE": "OKAY"}{')
        )

    def test_a_native_line_up_to_max_frame_passes_and_one_byte_more_is_refused(
        self,
    ) -> None:
        server = MemoryServer(max_frame=100)
        self.addCleanup(server.stop)
        tony = server.connect()
        tony.send_json(join(*TONY, V=2))
        tony.take()
        head = b'{"CMD":"NOPE","X":"'
        for size, code in ((100, "BAD_COMMAND"), (101, "FRAME_TOO_LONG")):
            tony.send(head + b"x" * (size - len(head) - 2) + b'"}\n')
            (error,) = tony.take()
            self.assertEqual(error["CODE"], code, size)
        self.assertFalse(tony.closed_by_server)


class ProtocolClassTests(SynchronousTestCase):
    def test_factory_builds_chat_protocols(self) -> None:
        server = MemoryServer()
        self.addCleanup(server.stop)
        self.assertIsInstance(server.connect().protocol, ChatProtocol)
