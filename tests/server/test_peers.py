"""Peers that others wrote to the assignment (``tests.support.peers``)
against our server over loopback TCP: a brace-depth reader, an ASCII-only
reader, a length-prefixed peer, and clients that address by nickname or
``ALL``. None of them is dropped, and each gets what it can read."""

from __future__ import annotations

import struct

from twisted.trial.unittest import TestCase

from tests.support import (
    OKAY,
    RawClient,
    connect,
    join,
    join_all,
    msg,
    roster,
    send,
    start_server,
    strip_ts,
)
from tests.support.peers import (
    AsciiOnlyPeer,
    BraceDepthPeer,
    LengthPrefixedPeer,
    LineSplittingPeer,
)

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")
TEXT = 'café 你好 😀 "}{" \\ end'


class PeerTestCase(TestCase):
    async def peer_joins(
        self, port: int, kind: type[RawClient], who: tuple[str, str], *before
    ) -> RawClient:
        """Connect a peer of this kind, join as ``who`` after ``before``
        members, and check its ``ACK`` and ``LIST``."""
        peer = await connect(self, port, kind)
        peer.send_json(join(*who))
        expected = [OKAY, roster(*before, who)]
        self.assertEqual(await peer.next_objects(2), expected)
        return peer


class BraceDepthPeerTests(PeerTestCase):
    async def test_a_brace_depth_reader_is_never_sent_a_stray_newline(self) -> None:
        port = await start_server(self)
        (tony,) = await join_all(self, port, [TONY])
        mary = await self.peer_joins(port, BraceDepthPeer, MARY, TONY)
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))
        tony.send_json(send(TEXT, [MARY[1]], TONY[1]))
        mary.send_json(send("hi Tony", [TONY[1]], MARY[1]))
        received = strip_ts(await mary.next_object())
        self.assertEqual(received, msg("PRIVATE", TEXT, TONY[1]))
        self.assertEqual(
            strip_ts(await tony.next_object()), msg("PRIVATE", "hi Tony", MARY[1])
        )
        # An error is written in the same framing: still no newline.
        mary.send_json(send("to a ghost", ["ghost"], MARY[1]))
        self.assertEqual((await mary.next_object())["CODE"], "UNKNOWN_RECIPIENT")
        self.assertIsNone(mary.dropped)
        self.assertNotIn(b"\n", mary.received)


class AsciiOnlyPeerTests(PeerTestCase):
    async def test_an_ascii_only_reader_gets_escapes_not_raw_utf8(self) -> None:
        port = await start_server(self)
        (tony,) = await join_all(self, port, [TONY])
        mary = await self.peer_joins(port, AsciiOnlyPeer, MARY, TONY)
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))
        tony.send_json(send(TEXT, [], TONY[1]))
        self.assertEqual(strip_ts(await mary.next_object()), msg("ALL", TEXT, TONY[1]))
        self.assertIsNone(mary.dropped)
        self.assertTrue(bytes(mary.received).isascii())


class LengthPrefixedPeerTests(PeerTestCase):
    async def test_a_length_prefixed_peer_is_answered_in_its_framing(self) -> None:
        port = await start_server(self)
        (tony,) = await join_all(self, port, [TONY])
        mary = await self.peer_joins(port, LengthPrefixedPeer, MARY, TONY)
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))
        # The ACK's very bytes: a 4-byte big-endian length, then the object.
        (length,) = struct.unpack(">I", mary.received[:4])
        self.assertEqual(
            bytes(mary.received[4 : 4 + length]), b'{"CMD":"ACK","TYPE":"OKAY"}'
        )
        tony.send_json(send(TEXT, [MARY[1]], TONY[1]))
        self.assertEqual(
            strip_ts(await mary.next_object()), msg("PRIVATE", TEXT, TONY[1])
        )
        mary.send_json(send(TEXT, [], MARY[1]))
        self.assertEqual(strip_ts(await tony.next_object()), msg("ALL", TEXT, MARY[1]))
        self.assertIsNone(mary.dropped)

    async def test_a_length_prefixed_peer_gets_ascii_only(self) -> None:
        """Its peers decode ASCII only: é and emoji come as \\u escapes."""
        port = await start_server(self)
        (tony,) = await join_all(self, port, [TONY])
        mary = await self.peer_joins(port, LengthPrefixedPeer, MARY, TONY)
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))
        tony.send_json(send("café 😀", [MARY[1]], TONY[1]))
        received = await mary.next_object()
        self.assertEqual(strip_ts(received), msg("PRIVATE", "café 😀", TONY[1]))
        self.assertIsNone(mary.dropped)
        self.assertTrue(bytes(mary.received).isascii())
        self.assertIn(b"caf\\u00e9 \\ud83d\\ude00", bytes(mary.received))

    async def test_a_prefixed_body_that_is_no_object_gets_bad_json_and_goes_on(
        self,
    ) -> None:
        port = await start_server(self)
        mary = await self.peer_joins(port, LengthPrefixedPeer, MARY)
        mary.send(struct.pack(">I", 5) + b"hello")
        self.assertEqual((await mary.next_object())["CODE"], "BAD_JSON")
        mary.send_json(send("x", ["ghost"], MARY[1]))
        self.assertEqual((await mary.next_object())["CODE"], "UNKNOWN_RECIPIENT")
        self.assertIsNone(mary.lost)

    async def test_a_prefixed_length_over_max_frame_gets_frame_too_long_and_close(
        self,
    ) -> None:
        port = await start_server(self, "--max-frame", "1000")
        mary = await self.peer_joins(port, LengthPrefixedPeer, MARY)
        mary.send(struct.pack(">I", 1001) + b"{")
        error = await mary.next_object()
        self.assertEqual((error["CMD"], error["CODE"]), ("ERROR", "FRAME_TOO_LONG"))
        await mary.closed()


class LineSplittingPeerTests(PeerTestCase):
    async def test_unicode_line_breaks_in_a_message_are_escaped(self) -> None:
        """U+0085, U+2028 and U+2029 break lines for str.splitlines(): a
        native client reading so still gets one object per line."""
        port = await start_server(self)
        (tony,) = await join_all(self, port, [TONY])
        mary = await connect(self, port, LineSplittingPeer)
        mary.send_json(join(*MARY))
        self.assertEqual(await mary.next_objects(2), [OKAY, roster(TONY, MARY)])
        text = "one\u2028two\u2029three\u0085four é"
        tony.send_json(send(text, [MARY[1]], TONY[1]))
        self.assertEqual(
            strip_ts(await mary.next_object()), msg("PRIVATE", text, TONY[1])
        )
        self.assertIsNone(mary.dropped)
        self.assertIn(b"one\\u2028two\\u2029three\\u0085four \xc3\xa9", mary.received)


class LiberalToTests(PeerTestCase):
    """Independent clients put nicknames or ``ALL`` in ``TO``."""

    async def test_a_nickname_in_to_reaches_that_user(self) -> None:
        port = await start_server(self)
        tony, mary, henry = await join_all(self, port, [TONY, MARY, HENRY])
        tony.send_json(send("psst", ["Mary"], TONY[1]))
        self.assertEqual(
            strip_ts(await mary.next_object()), msg("PRIVATE", "psst", TONY[1])
        )
        tony.send_json(send("you two", ["Mary", HENRY[1]], TONY[1]))
        group = msg("GROUP", "you two", TONY[1], [MARY[1], HENRY[1]])
        self.assertEqual(strip_ts(await mary.next_object()), group)
        self.assertEqual(strip_ts(await henry.next_object()), group)
        self.assertEqual(tony.pending(), [])

    async def test_to_all_is_a_broadcast(self) -> None:
        port = await start_server(self)
        tony, mary, henry = await join_all(self, port, [TONY, MARY, HENRY])
        tony.send_json(send("everyone", ["ALL"], TONY[1]))
        for peer in (mary, henry):
            self.assertEqual(
                strip_ts(await peer.next_object()), msg("ALL", "everyone", TONY[1])
            )
        self.assertEqual(tony.pending(), [])

    async def test_the_user_id_all_is_reserved(self) -> None:
        port = await start_server(self)
        peer = await connect(self, port)
        peer.send_json(join("Everyone", "ALL"))
        ack = await peer.next_object()
        self.assertEqual(
            (ack["CMD"], ack["TYPE"], ack["CODE"]), ("ACK", "FAIL", "BAD_JOIN")
        )
