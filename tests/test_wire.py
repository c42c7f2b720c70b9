"""Tests of muca.wire: cutting frames from either framing, and encoding."""

import json

from twisted.trial.unittest import SynchronousTestCase

from muca.wire import BadFrame, FrameDecoder, FrameTooLong, Framing, encode


class FrameDecoderTests(SynchronousTestCase):
    def test_native_lines_decode_to_objects(self) -> None:
        decoder = FrameDecoder()
        frames = decoder.feed(b'{"CMD":"JOIN"}\n{"CMD":"SEND"}\r\n')
        self.assertEqual(frames, [{"CMD": "JOIN"}, {"CMD": "SEND"}])
        self.assertTrue(decoder.newline_framed)

    def test_original_back_to_back_objects_decode(self) -> None:
        decoder = FrameDecoder()
        frames = decoder.feed(b'{"CMD": "JOIN"}{"CMD": "SEND", "MSG": "}{"}')
        self.assertEqual(frames, [{"CMD": "JOIN"}, {"CMD": "SEND", "MSG": "}{"}])
        self.assertFalse(decoder.newline_framed)

    def test_stream_split_at_every_point_gives_same_frames(self) -> None:
        stream = (
            b'{"CMD": "JOIN", "UN": "T\\"o{ny"}{"A": [1, {"b": "\\\\"}]}\n'
            + '{"MSG": "héllo"}\n'.encode()
        )
        whole = FrameDecoder().feed(stream)
        self.assertEqual(len(whole), 3)
        for cut in range(len(stream) + 1):
            decoder = FrameDecoder()
            frames = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
            self.assertEqual(frames, whole, cut)

    def test_non_objects_and_bad_json_are_bad_frames(self) -> None:
        frames = FrameDecoder().feed(b'[1]\nnope\n{"a": }\n\xff\xfe\n{"ok": 1}\n')
        self.assertEqual([type(f) for f in frames[:4]], [BadFrame] * 4)
        self.assertEqual(frames[4], {"ok": 1})

    def test_frame_over_limit_raises_without_waiting_for_its_end(self) -> None:
        decoder = FrameDecoder(max_frame=100)
        with self.assertRaises(FrameTooLong):
            decoder.feed(b'{"MSG": "' + b"x" * 200)


class EncodeTests(SynchronousTestCase):
    def test_native_is_utf8_line(self) -> None:
        data = encode({"MSG": "héllo"}, Framing.NATIVE)
        self.assertEqual(data, '{"MSG":"héllo"}\n'.encode())

    def test_original_is_ascii_without_brace_pairs_inside_strings(self) -> None:
        data = encode({"MSG": "a}{b é"}, Framing.ORIGINAL)
        self.assertNotIn(b"}{", data)
        self.assertTrue(data.isascii())
        self.assertEqual(json.loads(data), {"MSG": "a}{b é"})
