"""Tests of muca.protocol.wire: cutting frames from either framing, and encoding."""

import json
import random

from twisted.trial.unittest import SynchronousTestCase

from muca.protocol.wire import (
    BAD_JSON,
    FRAME_TOO_LONG,
    STREAM_FRAMINGS,
    BadFrame,
    FrameDecoder,
    FrameTooLong,
    Framing,
    encode,
)


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

    def test_native_escapes_what_splitlines_breaks_at_and_nothing_else(self) -> None:
        text = "a\u2028b\u2029c\u0085d \u00e9 \u2027 \U0001f600"
        data = encode({"MSG": text, "TO": ["x\u2028"]}, Framing.NATIVE)
        self.assertEqual(
            data,
            '{"MSG":"a\\u2028b\\u2029c\\u0085d \u00e9 \u2027 \U0001f600",'
            '"TO":["x\\u2028"]}\n'.encode(),
        )
        self.assertEqual(len(data.decode().splitlines()), 1)
        self.assertEqual(json.loads(data), {"MSG": text, "TO": ["x\u2028"]})
        frame = encode({"MSG": text}, Framing.WEBSOCKET)
        self.assertNotIn("\u2028".encode(), frame)

    def test_original_is_ascii_without_brace_pairs_inside_strings(self) -> None:
        data = encode({"MSG": "a}{b é"}, Framing.ORIGINAL)
        self.assertNotIn(b"}{", data)
        self.assertTrue(data.isascii())
        self.assertEqual(json.loads(data), {"MSG": "a}{b é"})


def feed_in_pieces(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list:
    """Feed ``data`` cut at the given offsets; return every frame."""
    frames = []
    start = 0
    for cut in [*cuts, len(data)]:
        frames += decoder.feed(data[start:cut])
        start = cut
    return frames


class FramingTests(SynchronousTestCase):
    """Both framings in, cut anywhere, and what the first frame says."""

    native = (
        '{"CMD":"JOIN","UN":"Tony","UID":"tony@hku.hk"}\n'
        '{"CMD":"SEND","MSG":"a}{b \\"q\\" \\\\ ünï 😀","TO":[],"FROM":"t"}\r\n'
    ).encode()
    original = (
        b'{"CMD": "JOIN", "UN": "Tony", "UID": "tony@hku.hk"}'
        b'{"CMD": "SEND", "MSG": "a}{b \\"q\\" \\\\ \\u00fcn\\u00ef", "TO": [],'
        b' "FROM": "t"}'
    )

    def test_native_split_at_every_byte_gives_same_frames(self) -> None:
        whole = FrameDecoder().feed(self.native)
        self.assertEqual(len(whole), 2)
        self.assertEqual(whole[1]["MSG"], 'a}{b "q" \\ ünï 😀')
        for cut in range(len(self.native) + 1):
            decoder = FrameDecoder()
            self.assertEqual(feed_in_pieces(decoder, self.native, [cut]), whole, cut)
            # Cut between the first object and its newline, the object is
            # followed by nothing: docs/protocol.md calls that original framing.
            first_end = self.native.index(b"\n")
            self.assertEqual(decoder.newline_framed, cut != first_end, cut)

    def test_original_split_at_every_byte_gives_same_frames(self) -> None:
        whole = FrameDecoder().feed(self.original)
        self.assertEqual(len(whole), 2)
        self.assertEqual(whole[1]["MSG"], 'a}{b "q" \\ ünï')
        for cut in range(len(self.original) + 1):
            decoder = FrameDecoder()
            frames = feed_in_pieces(decoder, self.original, [cut])
            self.assertEqual(frames, whole, cut)
            self.assertFalse(decoder.newline_framed, cut)

    def test_byte_by_byte_gives_same_frames(self) -> None:
        for stream in (self.native, self.original):
            decoder = FrameDecoder()
            frames = feed_in_pieces(decoder, stream, list(range(1, len(stream))))
            self.assertEqual(frames, FrameDecoder().feed(stream))

    def test_two_messages_in_one_segment(self) -> None:
        decoder = FrameDecoder()
        frames = decoder.feed(b'{"a": 1}\n{"b": 2}\n')
        self.assertEqual(frames, [{"a": 1}, {"b": 2}])
        frames = FrameDecoder().feed(b'{"a": 1}{"b": 2}')
        self.assertEqual(frames, [{"a": 1}, {"b": 2}])

    def test_whitespace_between_objects_is_ignored(self) -> None:
        frames = FrameDecoder().feed(b' \r\n\t{"a": 1}  \n\n  {"b": 2} \t {"c": 3}\n')
        self.assertEqual(frames, [{"a": 1}, {"b": 2}, {"c": 3}])

    def test_whitespace_alone_gives_nothing(self) -> None:
        decoder = FrameDecoder()
        self.assertEqual(decoder.feed(b" \r\n\t\n"), [])
        self.assertIsNone(decoder.newline_framed)

    def test_first_frame_followed_by_newline_is_native(self) -> None:
        decoder = FrameDecoder()
        decoder.feed(b'{"a": 1}  \r\n')
        self.assertTrue(decoder.newline_framed)

    def test_first_frame_followed_by_object_is_original(self) -> None:
        decoder = FrameDecoder()
        decoder.feed(b'{"a": 1}{"b": 2}\n')
        self.assertFalse(decoder.newline_framed)

    def test_first_frame_followed_by_nothing_is_original(self) -> None:
        decoder = FrameDecoder()
        decoder.feed(b'{"a": 1}')
        self.assertFalse(decoder.newline_framed)
        # Decided once: later newlines do not change it.
        decoder.feed(b'\n{"b": 2}\n')
        self.assertFalse(decoder.newline_framed)

    def test_braces_and_escapes_inside_strings_do_not_end_objects(self) -> None:
        stream = b'{"a": "}\\"}{\\\\", "b": {"c": "{{"}}{"d": "\\u007d"}'
        frames = FrameDecoder().feed(stream)
        self.assertEqual(frames, [{"a": '}"}{\\', "b": {"c": "{{"}}, {"d": "}"}])


class BadInputTests(SynchronousTestCase):
    """Malformed input gives BadFrame values and the stream goes on."""

    def test_non_utf8_object_is_bad_json(self) -> None:
        frames = FrameDecoder().feed(b'{"MSG": "\xff\xfe"}\n{"ok": 1}\n')
        self.assertEqual(frames[0], BadFrame(BAD_JSON, "frame is not valid UTF-8"))
        self.assertEqual(frames[1], {"ok": 1})

    def test_non_utf8_object_in_original_framing_is_bad_json(self) -> None:
        frames = FrameDecoder().feed(b'{"MSG": "\xc3("}{"ok": 1}')
        self.assertEqual(
            frames, [BadFrame(BAD_JSON, "frame is not valid UTF-8"), {"ok": 1}]
        )

    def test_deep_nesting_is_bad_json_not_a_crash(self) -> None:
        for opener, closer in ((b"[", b"]"), (b'{"a":', b"}")):
            depth = 20000
            stream = b'{"a":' + opener * depth + b"1" + closer * depth + b"}\n"
            frames = FrameDecoder(max_frame=len(stream)).feed(stream + b'{"ok":1}\n')
            self.assertIsInstance(frames[0], BadFrame)
            self.assertEqual(frames[1:], [{"ok": 1}])

    def test_json_values_that_are_not_objects_are_refused(self) -> None:
        for value in (b"[]", b"1", b'"text"', b"null", b"true"):
            frames = FrameDecoder().feed(value + b'\n{"ok": 1}\n')
            self.assertEqual(
                frames, [BadFrame(BAD_JSON, "expected a JSON object"), {"ok": 1}], value
            )

    def test_what_cannot_begin_an_object_is_dropped_up_to_the_next_brace(
        self,
    ) -> None:
        decoder = FrameDecoder()
        self.assertEqual(decoder.feed(b'{"ok": 0}\n'), [{"ok": 0}])
        frames = decoder.feed(b'[{"CMD": "SEND"}, {"CMD": "JOIN"}]\n{"ok": 1}\n')
        bad = BadFrame(BAD_JSON, "expected a JSON object")
        self.assertEqual(
            frames, [bad, {"CMD": "SEND"}, bad, {"CMD": "JOIN"}, bad, {"ok": 1}]
        )

    def test_garbage_is_one_error_at_once_without_waiting_for_its_end(self) -> None:
        bad = BadFrame(BAD_JSON, "expected a JSON object")
        for first in (b"hello", b"42", b"null", b'"text', b"\x01"):
            decoder = FrameDecoder()
            self.assertEqual(decoder.feed(first), [bad], first)
            self.assertEqual(decoder.feed(b" still garbage " * 100), [], first)
            self.assertEqual(len(decoder._buffer), 0)  # dropped, not held
            self.assertEqual(decoder.feed(b'{"ok": 1}'), [{"ok": 1}], first)
            self.assertFalse(decoder.newline_framed)

    def test_garbage_ended_by_a_newline_shows_native_framing(self) -> None:
        decoder = FrameDecoder()
        self.assertEqual(len(decoder.feed(b"hello\n")), 1)
        self.assertTrue(decoder.newline_framed)

    def test_garbage_between_original_objects_resyncs_at_next_object(self) -> None:
        frames = FrameDecoder().feed(b'{"a": 1}garbage{"b": 2}')
        self.assertEqual(frames[0], {"a": 1})
        self.assertIsInstance(frames[1], BadFrame)
        self.assertEqual(frames[2], {"b": 2})

    def test_broken_line_resyncs_at_next_line(self) -> None:
        decoder = FrameDecoder()
        frames = decoder.feed(b'{"ok": 0}\n{"a": "unterminated\n{"b": 2}\n')
        self.assertEqual(frames[0], {"ok": 0})
        self.assertIsInstance(frames[1], BadFrame)
        self.assertEqual(frames[2], {"b": 2})

    def test_unbalanced_line_resyncs_at_next_line(self) -> None:
        decoder = FrameDecoder()
        frames = decoder.feed(b'{"ok": 0}\n{"a": {"b": 1}\n{"c": 2}\n')
        self.assertEqual(
            frames, [{"ok": 0}, BadFrame(BAD_JSON, "malformed JSON object"), {"c": 2}]
        )

    def test_object_with_trailing_comma_is_bad_json(self) -> None:
        frames = FrameDecoder().feed(b'{"a": 1,}\n{"b": 2}\n')
        self.assertEqual(
            frames, [BadFrame(BAD_JSON, "frame is not valid JSON"), {"b": 2}]
        )


class FrameLimitTests(SynchronousTestCase):
    """``max_frame`` bounds one frame, and what the decoder holds."""

    limit = 100

    def frame_of(self, size: int) -> bytes:
        """A compact object of exactly ``size`` bytes."""
        head = b'{"MSG":"'
        return head + b"x" * (size - len(head) - 2) + b'"}'

    def test_frame_of_exactly_the_limit_passes_in_both_framings(self) -> None:
        frame = self.frame_of(self.limit)
        for tail in (b"\n", b"\r\n", b"", b'{"b":2}'):
            frames = FrameDecoder(self.limit).feed(frame + tail)
            self.assertEqual(frames[0]["MSG"], "x" * (self.limit - 10), tail)

    def test_frame_one_byte_over_the_limit_raises_in_both_framings(self) -> None:
        frame = self.frame_of(self.limit + 1)
        for tail in (b"\n", b"\r\n", b"", b'{"b":2}'):
            with self.assertRaises(FrameTooLong, msg=tail):
                FrameDecoder(self.limit).feed(frame + tail)

    def test_long_frame_raises_as_soon_as_it_passes_the_limit(self) -> None:
        decoder = FrameDecoder(self.limit)
        frame = self.frame_of(10 * self.limit)
        fed = 0
        with self.assertRaises(FrameTooLong):
            for fed in range(1, len(frame) + 1):
                decoder.feed(frame[fed - 1 : fed])
        self.assertEqual(fed, self.limit + 1)

    def test_decoder_never_holds_more_than_the_limit(self) -> None:
        decoder = FrameDecoder(self.limit)
        stream = (self.frame_of(60) + b"\n" + self.frame_of(90)) * 5
        for start in range(0, len(stream), 7):
            decoder.feed(stream[start : start + 7])
            self.assertLessEqual(len(decoder._buffer), self.limit)

    def test_garbage_without_end_is_one_error_and_never_held(self) -> None:
        decoder = FrameDecoder(self.limit)
        frames = []
        for _ in range(100):
            frames += decoder.feed(b"x" * 10)
            self.assertEqual(len(decoder._buffer), 0)
        self.assertEqual(frames, [BadFrame(BAD_JSON, "expected a JSON object")])

    def test_native_line_over_the_limit_is_an_error_and_the_stream_goes_on(
        self,
    ) -> None:
        decoder = FrameDecoder(self.limit)
        self.assertEqual(decoder.feed(b'{"a": 1}\n'), [{"a": 1}])
        frames = []
        long_line = self.frame_of(10 * self.limit) + b"\n"
        for start in range(0, len(long_line), 30):
            frames += decoder.feed(long_line[start : start + 30])
            self.assertLessEqual(len(decoder._buffer), self.limit)
        frames += decoder.feed(b'{"b": 2}\n')
        too_long = BadFrame(FRAME_TOO_LONG, "frame longer than 100 bytes")
        self.assertEqual(frames, [too_long, {"b": 2}])

    def test_native_line_over_the_limit_in_one_piece_keeps_what_follows(
        self,
    ) -> None:
        decoder = FrameDecoder(self.limit)
        decoder.feed(b'{"a": 1}\n')
        frames = decoder.feed(self.frame_of(300) + b'\n{"b": 2}\n{"c": 3}')
        self.assertEqual([type(f) for f in frames], [BadFrame, dict, dict])
        self.assertEqual(frames[0].code, FRAME_TOO_LONG)

    def test_original_frame_over_the_limit_raises(self) -> None:
        decoder = FrameDecoder(self.limit)
        decoder.feed(b'{"a": 1}{"b": 2}')
        with self.assertRaises(FrameTooLong):
            decoder.feed(self.frame_of(300))

    def test_many_small_frames_in_one_chunk_are_not_too_long(self) -> None:
        for separator in (b"\n", b""):
            chunk = (self.frame_of(50) + separator) * 40
            frames = FrameDecoder(self.limit).feed(chunk)
            self.assertEqual(len(frames), 40, separator)

    def test_limit_error_names_code_and_limit(self) -> None:
        with self.assertRaises(FrameTooLong) as caught:
            FrameDecoder(self.limit).feed(self.frame_of(200))
        self.assertEqual(caught.exception.code, FRAME_TOO_LONG)
        self.assertEqual(caught.exception.limit, self.limit)


class EncodeRoundTripTests(SynchronousTestCase):
    """What ``encode`` writes, read back by either kind of peer."""

    texts = ["plain", "a}{b", "}{}{", 'q"uote\\', "line\nbreak\r", "ünï 😀 \u2028"]

    def test_native_is_one_line_that_decodes_to_the_same_object(self) -> None:
        for text in self.texts:
            data = encode({"CMD": "MSG", "MSG": text}, Framing.NATIVE)
            self.assertEqual(data.count(b"\n"), 1, text)
            self.assertTrue(data.endswith(b"\n"))
            self.assertEqual(json.loads(data), {"CMD": "MSG", "MSG": text})

    def test_original_stream_splits_on_brace_pairs_into_the_objects(self) -> None:
        objects = [{"CMD": "MSG", "MSG": t, "TO": [{"x": t}]} for t in self.texts]
        stream = b"".join(encode(obj, Framing.ORIGINAL) for obj in objects)
        self.assertTrue(stream.isascii())
        parts = stream.decode("ascii").split("}{")
        self.assertEqual(len(parts), len(objects))
        rebuilt = [
            "{" * (i > 0) + p + "}" * (i < len(parts) - 1) for i, p in enumerate(parts)
        ]
        self.assertEqual([json.loads(p) for p in rebuilt], objects)

    def test_both_framings_decode_back_with_our_decoder(self) -> None:
        objects = [{"MSG": t} for t in self.texts]
        for framing in STREAM_FRAMINGS:
            stream = b"".join(encode(obj, framing) for obj in objects)
            self.assertEqual(FrameDecoder().feed(stream), objects, framing)


class RandomStreamTests(SynchronousTestCase):
    def test_random_objects_framings_and_cuts_decode_back(self) -> None:
        """Objects with nasty strings, either framing, random whitespace
        between them, cut at random points: the same objects come out."""
        rng = random.Random(40452)
        pieces = ["}", "{", '"', "\\", "}{", " ", "\n", "é", "😀", "\u2028", "a"]
        for _ in range(200):
            objects = [
                {
                    "MSG": "".join(
                        rng.choice(pieces) for _ in range(rng.randrange(12))
                    ),
                    "TO": [{"x": [1, {}]}] * rng.randrange(3),
                }
                for _ in range(rng.randrange(1, 6))
            ]
            framing = rng.choice(STREAM_FRAMINGS)
            stream = b""
            for obj in objects:
                if framing is Framing.NATIVE:
                    stream += encode(obj, framing).replace(
                        b"\n", rng.choice([b"\n", b"\r\n"])
                    )
                elif framing is Framing.PREFIXED:
                    stream += encode(obj, framing)
                else:
                    stream += rng.choice([b"", b" ", b"\t"]) + encode(obj, framing)
            cuts = sorted(rng.sample(range(len(stream) + 1), min(4, len(stream))))
            decoder = FrameDecoder()
            self.assertEqual(feed_in_pieces(decoder, stream, cuts), objects, stream)


class LengthPrefixedTests(SynchronousTestCase):
    """A connection whose first byte is 0x00: 4-byte big-endian lengths."""

    def test_prefixed_frames_decode_however_cut(self) -> None:
        objects = [{"CMD": "JOIN", "UN": "Tønÿ\n"}, {"MSG": "}{\n"}]
        stream = b"".join(encode(obj, Framing.PREFIXED) for obj in objects)
        for cut in range(len(stream) + 1):
            decoder = FrameDecoder()
            frames = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
            self.assertEqual(frames, objects, cut)
            self.assertTrue(decoder.length_prefixed)

    def test_encode_writes_the_length_then_compact_ascii(self) -> None:
        body = b'{"MSG":"\\u00e9\\ud83d\\ude00"}'
        self.assertEqual(
            encode({"MSG": "é😀"}, Framing.PREFIXED),
            len(body).to_bytes(4, "big") + body,
        )

    def test_a_body_that_is_no_object_is_bad_json_and_the_stream_goes_on(self) -> None:
        stream = b"\x00\x00\x00\x02[]" + encode({"ok": 1}, Framing.PREFIXED)
        frames = FrameDecoder().feed(stream)
        self.assertEqual(
            frames, [BadFrame(BAD_JSON, "expected a JSON object"), {"ok": 1}]
        )

    def test_a_length_over_the_limit_raises_before_the_body_comes(self) -> None:
        decoder = FrameDecoder(100)
        self.assertEqual(decoder.feed(b"\x00\x00\x00\x64"), [])
        decoder = FrameDecoder(100)
        with self.assertRaises(FrameTooLong):
            decoder.feed(b"\x00\x00\x00\x65{")

    def test_only_a_first_nul_byte_selects_it(self) -> None:
        decoder = FrameDecoder()
        decoder.feed(b'{"a": 1}\n')
        self.assertFalse(decoder.length_prefixed)
        self.assertEqual(decoder.feed(b"\x00\n")[0].code, BAD_JSON)
