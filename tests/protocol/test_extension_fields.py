"""The fields the extensions added, byte for byte and field by field: the
WebSocket frames the server writes, a server's ``MAX_FRAME`` and ``ID`` as a
client reads them, and ``HISTORY BEFORE`` as the server reads it."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from muca.protocol.messages import (
    BAD_COMMAND,
    Ack,
    History,
    ProtocolError,
    parse_client_command,
    parse_server_command,
)
from muca.protocol.wire import websocket_text_frame


class WebSocketFrameTests(SynchronousTestCase):
    """RFC 6455 section 5.2: FIN + text opcode, unmasked, then the length in
    7 bits, or 126 and 16 bits, or 127 and 64 bits."""

    def test_short_text_has_its_length_in_the_second_byte(self) -> None:
        self.assertEqual(websocket_text_frame(b""), b"\x81\x00")
        self.assertEqual(websocket_text_frame(b"hi"), b"\x81\x02hi")
        text = b"x" * 125
        self.assertEqual(websocket_text_frame(text), b"\x81\x7d" + text)

    def test_from_126_bytes_the_length_takes_two_more_bytes(self) -> None:
        text = b"y" * 126
        self.assertEqual(websocket_text_frame(text), b"\x81\x7e\x00\x7e" + text)
        text = b"z" * 0xFFFF
        self.assertEqual(websocket_text_frame(text), b"\x81\x7e\xff\xff" + text)

    def test_from_64_kib_the_length_takes_eight_more_bytes(self) -> None:
        text = b"w" * 0x10000
        frame = websocket_text_frame(text)
        self.assertEqual(frame[:10], b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00")
        self.assertEqual(frame[10:], text)


def ack(**extra: Any) -> Ack:
    command = parse_server_command({"CMD": "ACK", "TYPE": "OKAY", **extra})
    assert isinstance(command, Ack)
    return command


class ServerFieldTests(SynchronousTestCase):
    """What a client takes from the extension fields of a server's objects."""

    def test_max_frame_is_read_when_it_is_a_positive_whole_number(self) -> None:
        self.assertEqual(ack(MAX_FRAME=65536).max_frame, 65536)
        self.assertEqual(ack(MAX_FRAME=1).max_frame, 1)

    def test_an_unusable_max_frame_means_the_server_did_not_say(self) -> None:
        self.assertIsNone(ack().max_frame)
        for value in (0, -5, True, "65536", 1.5, None):
            with self.subTest(value=value):
                self.assertIsNone(ack(MAX_FRAME=value).max_frame)

    def test_a_message_id_is_read_only_when_it_is_a_whole_number(self) -> None:
        base = {"CMD": "MSG", "TYPE": "ALL", "MSG": "hi", "FROM": "t"}
        self.assertEqual(parse_server_command({**base, "ID": 42}).ident, 42)
        for value in ("42", 4.2, None, True):
            with self.subTest(value=value):
                self.assertIsNone(parse_server_command({**base, "ID": value}).ident)


class HistoryRequestTests(SynchronousTestCase):
    """``HISTORY BEFORE`` as the server reads it."""

    def test_the_smallest_id_and_limit_are_accepted(self) -> None:
        command = parse_client_command({"CMD": "HISTORY", "BEFORE": 1, "LIMIT": 1})
        self.assertEqual(command, History(before=1, limit=1))

    def test_before_beyond_64_bits_is_out_of_range(self) -> None:
        self.assertEqual(
            parse_client_command({"CMD": "HISTORY", "BEFORE": 2**63 - 1}),
            History(before=2**63 - 1),
        )
        for value in (2**63, 2**64, 10**100):
            with self.subTest(value=value):
                with self.assertRaises(ProtocolError) as caught:
                    parse_client_command({"CMD": "HISTORY", "BEFORE": value})
                error = caught.exception
                self.assertEqual(
                    (error.code, error.reason, error.ref),
                    (
                        BAD_COMMAND,
                        "BEFORE is out of range: message ids are below 2**63",
                        "HISTORY",
                    ),
                )

    def test_before_must_be_a_message_id(self) -> None:
        for value in (0, -1, "5", None, 2.5, True):
            with self.subTest(value=value):
                with self.assertRaises(ProtocolError) as caught:
                    parse_client_command({"CMD": "HISTORY", "BEFORE": value})
                error = caught.exception
                self.assertEqual(
                    (error.code, error.reason, error.ref),
                    (
                        BAD_COMMAND,
                        "HISTORY needs BEFORE, a message id (a whole number > 0)",
                        "HISTORY",
                    ),
                )
