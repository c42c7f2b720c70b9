"""The decoder against frames written out by hand: what a server makes of
the bytes a peer sends, read by read, in every framing; and the exact bytes
the encoder writes."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from muca.protocol.wire import (
    BAD_JSON,
    FRAME_TOO_LONG,
    BadFrame,
    FrameDecoder,
    FrameTooLong,
    Framing,
    encode,
)

NOT_AN_OBJECT = BadFrame(BAD_JSON, "expected a JSON object")
MALFORMED = BadFrame(BAD_JSON, "malformed JSON object")
NOT_JSON = BadFrame(BAD_JSON, "frame is not valid JSON")
NOT_UTF8 = BadFrame(BAD_JSON, "frame is not valid UTF-8")


def too_long(limit: int) -> BadFrame:
    """The frame a native peer gets for a line over ``limit`` bytes."""
    return BadFrame(FRAME_TOO_LONG, f"frame longer than {limit} bytes")


def frames_of(
    reads: list[bytes], max_frame: int = 1024
) -> tuple[list[Any], FrameDecoder]:
    """Every frame the decoder returns for these reads, one feed per read."""
    decoder = FrameDecoder(max_frame)
    frames: list[Any] = []
    for data in reads:
        frames.extend(decoder.feed(data))
    return frames, decoder


class NativeFramingTests(SynchronousTestCase):
    def test_one_object_per_line(self) -> None:
        frames, decoder = frames_of([b'{"CMD":"JOIN"}\n{"A":[1,{"B":"}"}]}\r\n'])
        self.assertEqual(frames, [{"CMD": "JOIN"}, {"A": [1, {"B": "}"}]}])
        self.assertIs(decoder.newline_framed, True)
        self.assertIs(decoder.length_prefixed, False)

    def test_a_first_frame_split_after_its_opening_brace(self) -> None:
        frames, decoder = frames_of([b"{", b'"A":"x"}\n{"B', b'":2}\n{"C":3}'])
        # A whole object is a frame before its newline comes.
        self.assertEqual(frames, [{"A": "x"}, {"B": 2}, {"C": 3}])
        self.assertEqual(decoder.feed(b"\n"), [])
        self.assertIs(decoder.newline_framed, True)

    def test_a_read_ending_after_a_brace_then_a_broken_line(self) -> None:
        frames, _ = frames_of([b'{"A":1}\n{', b'"B":\n2}\n{"C":3}\n'])
        self.assertEqual(frames, [{"A": 1}, MALFORMED, NOT_AN_OBJECT, {"C": 3}])

    def test_a_newline_inside_an_object_breaks_it(self) -> None:
        frames, _ = frames_of([b'{"A":1}\n{"B":\n2}\n{"C":3}\n'])
        self.assertEqual(frames, [{"A": 1}, MALFORMED, NOT_AN_OBJECT, {"C": 3}])

    def test_the_newline_after_the_first_frame_in_its_own_read(self) -> None:
        # The peer is known to frame by lines only once the newline arrives.
        frames, _ = frames_of([b'{"A":1}', b" \n", b'{"B":\n2}\n{"C":3}\n'])
        self.assertEqual(frames, [{"A": 1}, MALFORMED, NOT_AN_OBJECT, {"C": 3}])

    def test_an_object_broken_over_the_last_lines_of_a_read(self) -> None:
        frames, _ = frames_of([b'{"A":1}\n', b'{"B":\n2}\n'])
        self.assertEqual(frames, [{"A": 1}, MALFORMED, NOT_AN_OBJECT])

    def test_a_raw_newline_in_a_string_breaks_the_object(self) -> None:
        frames, _ = frames_of([b'{"A":1}\n{"B":"x\n', b'"}\n{"C":3}\n'])
        self.assertEqual(frames, [{"A": 1}, MALFORMED, NOT_AN_OBJECT, {"C": 3}])

    def test_garbage_is_one_error_up_to_its_newline(self) -> None:
        frames, decoder = frames_of([b'hello\n{"B":2}\n', b'12 x\n{"C":3}\n'])
        self.assertEqual(frames, [NOT_AN_OBJECT, {"B": 2}, NOT_AN_OBJECT, {"C": 3}])
        self.assertIs(decoder.newline_framed, True)

    def test_garbage_is_one_error_up_to_the_next_brace(self) -> None:
        frames, decoder = frames_of([b'{"A":1}\n', b'hello {"B":2}\n'])
        self.assertEqual(frames, [{"A": 1}, NOT_AN_OBJECT, {"B": 2}])
        # The first frame decided the framing; later garbage does not undo it.
        self.assertIs(decoder.newline_framed, True)

    def test_a_bad_first_frame_still_shows_the_framing(self) -> None:
        frames, decoder = frames_of([b'{"A":} \t\n{"B":2}\n'])
        self.assertEqual(frames, [NOT_JSON, {"B": 2}])
        self.assertIs(decoder.newline_framed, True)

    def test_a_first_frame_followed_by_other_bytes_is_not_newline_framed(
        self,
    ) -> None:
        frames, decoder = frames_of([b'{"A":}X\n'])
        self.assertEqual(frames, [NOT_JSON, NOT_AN_OBJECT])
        self.assertIs(decoder.newline_framed, False)

    def test_undecodable_lines_say_why(self) -> None:
        frames, _ = frames_of([b'{"A":}\n{"A":"\xff"}\n{"A":1}\n'])
        self.assertEqual(frames, [NOT_JSON, NOT_UTF8, {"A": 1}])

    def test_deep_nesting_is_not_json(self) -> None:
        deep = b'{"A":' * 5000 + b"1" + b"}" * 5000
        frames, _ = frames_of([deep + b"\n"], max_frame=len(deep))
        self.assertEqual(frames, [NOT_JSON])

    def test_a_line_over_the_limit_is_refused_and_the_next_one_read(self) -> None:
        long = b'{"A":"' + b"x" * 20 + b'"}'
        frames, _ = frames_of(
            [b'{"A":1}\n', long[:10], long[10:] + b'\n{"B":2}\n'], max_frame=16
        )
        self.assertEqual(frames, [{"A": 1}, too_long(16), {"B": 2}])

    def test_a_broken_line_of_exactly_the_limit_is_malformed(self) -> None:
        line = b'{"A":"wxyz'
        frames, _ = frames_of([b"{}\n", line + b"\n", b'{"B":2}\n'], max_frame=10)
        self.assertEqual(frames, [{}, MALFORMED, {"B": 2}])

    def test_a_broken_line_one_byte_over_the_limit_is_too_long(self) -> None:
        line = b'{"A":"vwxyz'
        frames, _ = frames_of([b"{}\n", line + b"\n", b'{"B":2}\n'], max_frame=10)
        self.assertEqual(frames, [{}, too_long(10), {"B": 2}])

    def test_only_json_whitespace_may_follow_an_object_on_its_line(self) -> None:
        frames, _ = frames_of([b'{"A":1}\n{"B":2}\x0c\n{"C":3}X\n{"D":4} \t\r\n'])
        self.assertEqual(
            frames,
            [{"A": 1}, {"B": 2}, NOT_AN_OBJECT, {"C": 3}, NOT_AN_OBJECT, {"D": 4}],
        )

    def test_an_object_of_exactly_the_limit_passes(self) -> None:
        frames, _ = frames_of(
            [b'{"A":"xyz"}\n', b'{"A":"wxyz"}\n', b'{"B":"xy"} \r\n'], max_frame=11
        )
        self.assertEqual(frames, [{"A": "xyz"}, too_long(11), {"B": "xy"}])


class OriginalFramingTests(SynchronousTestCase):
    def test_objects_back_to_back(self) -> None:
        frames, decoder = frames_of([b'{"A":1}{"B":"}{\\""}', b' {"C":{"D":2}}'])
        self.assertEqual(frames, [{"A": 1}, {"B": '}{"'}, {"C": {"D": 2}}])
        self.assertIs(decoder.newline_framed, False)

    def test_a_first_frame_split_after_its_opening_brace(self) -> None:
        frames, decoder = frames_of([b"{", b'"A":1}{', b'"B":{"C":2}}'])
        self.assertEqual(frames, [{"A": 1}, {"B": {"C": 2}}])
        self.assertIs(decoder.newline_framed, False)

    def test_an_object_over_several_lines(self) -> None:
        frames, _ = frames_of([b'{"A":1}{\n"B":\n2\n}', b'{"C":\n3}'])
        self.assertEqual(frames, [{"A": 1}, {"B": 2}, {"C": 3}])

    def test_blank_lines_before_the_first_object_decide_nothing(self) -> None:
        frames, decoder = frames_of([b' \n\n{"A":\n1}', b'{"B":\n2}'])
        self.assertEqual(frames, [{"A": 1}, {"B": 2}])
        self.assertIs(decoder.newline_framed, False)

    def test_garbage_before_an_object_without_a_newline(self) -> None:
        frames, decoder = frames_of([b'xx{"CMD":"JOIN"}'])
        self.assertEqual(frames, [NOT_AN_OBJECT, {"CMD": "JOIN"}])
        self.assertIs(decoder.newline_framed, False)
        self.assertEqual(decoder.feed(b'{"A":\n1}'), [{"A": 1}])

    def test_garbage_split_over_reads_is_one_error(self) -> None:
        frames, _ = frames_of([b"hel", b"lo", b' {"A":1}'])
        self.assertEqual(frames, [NOT_AN_OBJECT, {"A": 1}])

    def test_a_string_with_an_escape_split_over_reads(self) -> None:
        frames, _ = frames_of([b'{"A":1}{"B":"x\\', b'"y"}'])
        self.assertEqual(frames, [{"A": 1}, {"B": 'x"y'}])

    def test_a_frame_over_the_limit_closes_with_the_frames_before_it(self) -> None:
        decoder = FrameDecoder(16)
        self.assertEqual(decoder.feed(b'{"A":1}'), [{"A": 1}])
        with self.assertRaises(FrameTooLong) as caught:
            decoder.feed(b'{"B":2}{"C":"' + b"x" * 20)
        error = caught.exception
        self.assertEqual(
            (error.code, error.reason, error.limit, str(error)),
            (FRAME_TOO_LONG, "frame longer than 16 bytes", 16, error.reason),
        )
        self.assertEqual(error.frames, [{"B": 2}])

    def test_a_first_frame_over_the_limit_closes(self) -> None:
        decoder = FrameDecoder(8)
        with self.assertRaises(FrameTooLong) as caught:
            decoder.feed(b'{"A":"' + b"x" * 10 + b'"}\n')
        self.assertEqual(caught.exception.frames, [])
        self.assertEqual(caught.exception.reason, "frame longer than 8 bytes")


class LengthPrefixedFramingTests(SynchronousTestCase):
    STREAM = b'\x00\x00\x00\x07{"A":1}\x00\x00\x00\x03[1]\x00\x00\x00\x02{}'

    def test_each_object_after_its_length(self) -> None:
        frames, decoder = frames_of([self.STREAM])
        self.assertEqual(frames, [{"A": 1}, NOT_AN_OBJECT, {}])
        self.assertIs(decoder.length_prefixed, True)

    def test_cut_anywhere_gives_the_same_frames(self) -> None:
        for cut in range(1, len(self.STREAM)):
            with self.subTest(cut=cut):
                frames, _ = frames_of([self.STREAM[:cut], self.STREAM[cut:]])
                self.assertEqual(frames, [{"A": 1}, NOT_AN_OBJECT, {}])

    def test_a_length_over_the_limit_closes(self) -> None:
        decoder = FrameDecoder(16)
        self.assertEqual(decoder.feed(b"\x00\x00\x00\x10" + b"{}" + b" " * 14), [{}])
        with self.assertRaises(FrameTooLong) as caught:
            decoder.feed(b"\x00\x00\x00\x02{}\x00\x00\x00\x11")
        self.assertEqual(caught.exception.frames, [{}])
        self.assertEqual(caught.exception.reason, "frame longer than 16 bytes")


class EncodeTests(SynchronousTestCase):
    OBJ = {"CMD": "MSG", "MSG": "é}{", "TO": ["a"]}

    def test_native_is_compact_utf8_and_a_newline(self) -> None:
        self.assertEqual(
            encode(self.OBJ, Framing.NATIVE),
            '{"CMD":"MSG","MSG":"é}{","TO":["a"]}\n'.encode(),
        )

    def test_original_is_ascii_with_braces_in_strings_escaped(self) -> None:
        self.assertEqual(
            encode(self.OBJ, Framing.ORIGINAL),
            b'{"CMD": "MSG", "MSG": "\\u00e9}\\u007b", "TO": ["a"]}',
        )

    def test_prefixed_is_the_length_then_compact_ascii(self) -> None:
        body = b'{"CMD":"MSG","MSG":"\\u00e9}{","TO":["a"]}'
        self.assertEqual(encode(self.OBJ, Framing.PREFIXED), b"\x00\x00\x00\x29" + body)
        self.assertEqual(len(body), 0x29)
