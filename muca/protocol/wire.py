"""The byte stream on a MUCA connection, turned into JSON objects and back.

Every framing of ``docs/protocol.md`` is accepted on input: objects one per
line (native), objects back to back with no separator (original), and, on a
connection whose first byte is ``0x00``, each object after its 4-byte
big-endian length (length-prefixed). Output framing is chosen per connection
with :class:`Framing`.

This module knows nothing of commands or reactors: it cuts frames, decodes
them as UTF-8 JSON, and encodes objects for each framing (those of a TCP
stream, and WebSocket text messages).
"""

from __future__ import annotations

import enum
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_FRAME = 64 * 1024

# Codes of the errors found while cutting and decoding frames.
BAD_JSON = "BAD_JSON"
FRAME_TOO_LONG = "FRAME_TOO_LONG"


class Framing(enum.Enum):
    """How a connection's output is framed."""

    NATIVE = "native"  # one object per line, UTF-8
    ORIGINAL = "original"  # objects back to back, ASCII
    PREFIXED = "prefixed"  # 4-byte big-endian length, then the object (UTF-8)
    WEBSOCKET = "websocket"  # one object per WebSocket text message, UTF-8
    IRC = "irc"  # IRC lines, made per connection by muca.irc (native within)


#: The framings of a TCP byte stream, which :class:`FrameDecoder` cuts;
#: WebSocket messages are cut by the WebSocket library.
STREAM_FRAMINGS = (Framing.NATIVE, Framing.ORIGINAL, Framing.PREFIXED)


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame that could not be decoded: the caller answers ``ERROR`` and goes on."""

    code: str
    reason: str


class FrameTooLong(Exception):
    """A frame exceeds the size limit where its end cannot be found: the
    caller answers ``ERROR`` and closes.

    :attr:`frames` holds the frames that the same :meth:`FrameDecoder.feed`
    completed before the long one: the peer sent them first.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(too_long_reason(limit))
        self.limit = limit
        self.code = FRAME_TOO_LONG
        self.reason = str(self)
        self.frames: list[dict[str, Any] | BadFrame] = []


def too_long_reason(limit: int) -> str:
    """The ``REASON`` of ``FRAME_TOO_LONG``."""
    return f"frame longer than {limit} bytes"


_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_BLANKS = re.compile(rb"[ \t\r]*")
_OUTSIDE_STRING = re.compile(rb'[{}"\n]')
_INSIDE_STRING = re.compile(rb'["\\\n]')
_GARBAGE_END = re.compile(rb"[\n{]")
_OPEN, _QUOTE, _NEWLINE = b'{"\n'
_LENGTH = struct.Struct(">I")
# The first byte of a length-prefixed connection (a length under 16 MiB).
_PREFIX_MARK = 0


class FrameDecoder:
    """Cut a byte stream into JSON objects, whatever the peer's framing.

    Feed it bytes as they arrive; :meth:`feed` returns, in order, a ``dict``
    for every object and a :class:`BadFrame` for every malformed one. It
    never holds more than ``max_frame`` bytes of one frame between calls.
    However the stream is cut into pieces, the frames are the same.

    A frame over ``max_frame`` is a :class:`BadFrame` ``FRAME_TOO_LONG`` on a
    newline-framed connection, whose bytes up to the next newline are then
    dropped as they come; elsewhere (original or length-prefixed framing,
    or before the first frame has shown the framing) :meth:`feed` raises
    :class:`FrameTooLong`, and the caller closes the connection.

    What cannot begin an object (anything but whitespace and ``{``) is one
    ``BAD_JSON`` at once, and the bytes up to the next ``{`` or newline are
    dropped: an original peer that sends ``hello`` never sends the newline
    that would end it.

    After the first frame, :attr:`newline_framed` tells whether the peer
    ended it with a newline (native framing) or not (original framing), as
    far as the bytes received so far show: this is what decides a server's
    output framing. :attr:`length_prefixed` is set when the first byte was
    ``0x00``. Input is cut by the same rule once the byte after the first
    frame has arrived: a raw newline inside a newline-framed peer's object
    breaks the object.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.newline_framed: bool | None = None
        self.length_prefixed: bool | None = None
        self._buffer = bytearray()
        # How input is cut: by lines once the peer has shown it frames by
        # lines; decided by the first byte after the first frame.
        self._lines = False
        self._lines_pending = False
        # Dropping the rest of a too-long line, or of garbage.
        self._dropping_line = False
        self._dropping_garbage = False
        # Where the scan of the object at the start of the buffer stopped,
        # so that a frame arriving byte by byte is scanned once, not N times.
        self._scan_pos = 0
        self._depth = 0
        self._in_string = False

    def feed(self, data: bytes) -> list[dict[str, Any] | BadFrame]:
        """Take more bytes; return the frames they complete."""
        if self.length_prefixed is None and data:
            self.length_prefixed = data[0] == _PREFIX_MARK
        self._buffer += data
        frames: list[dict[str, Any] | BadFrame] = []
        try:
            if self.length_prefixed:
                self._cut_prefixed(frames)
            else:
                self._cut(frames)
        except FrameTooLong as error:
            self._reset()
            error.frames = frames
            raise
        return frames

    def _cut_prefixed(self, frames: list[dict[str, Any] | BadFrame]) -> None:
        buffer = self._buffer
        while len(buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer)
            if length > self.max_frame:
                raise FrameTooLong(self.max_frame)
            end = _LENGTH.size + length
            if len(buffer) < end:
                return
            frames.append(_decode(bytes(buffer[_LENGTH.size : end])))
            del buffer[:end]

    def _cut(self, frames: list[dict[str, Any] | BadFrame]) -> None:
        buffer = self._buffer
        while buffer:
            if self._dropping_line or self._dropping_garbage:
                if not self._drop():
                    break
                continue
            if self._scan_pos == 0:
                if self._lines_pending:
                    blanks = _BLANKS.match(buffer).end()
                    if blanks < len(buffer):
                        self._lines = buffer[blanks] == _NEWLINE
                        self._lines_pending = False
                skip = _WHITESPACE.match(buffer).end()
                if skip:
                    del buffer[:skip]
                    if not buffer:
                        break
            if buffer[0] != _OPEN:
                frames.append(_NOT_AN_OBJECT)
                self._dropping_garbage = True
                continue
            try:
                end = self._take_object(frames)
                if end is None:
                    self._check_size(len(buffer))
                    break
            except FrameTooLong:
                if not self._lines:
                    raise
                # The line's end can be found without holding it: say so and
                # drop it as it comes, and the connection goes on.
                self._reset_scan()
                frames.append(BadFrame(FRAME_TOO_LONG, too_long_reason(self.max_frame)))
                self._dropping_line = True
                continue
            if self.newline_framed is None:
                self._note_framing(end)
            del buffer[:end]

    def _drop(self) -> bool:
        """Drop a too-long line up to its newline, or garbage up to the next
        newline or ``{``; return False when more bytes are needed."""
        buffer = self._buffer
        pattern = _NEWLINE_ONLY if self._dropping_line else _GARBAGE_END
        match = pattern.search(buffer)
        if match is None:
            buffer.clear()
            return False
        newline_ended = match.group() == b"\n"
        del buffer[: match.end() if newline_ended else match.start()]
        if self._dropping_garbage and self.newline_framed is None:
            # Garbage first: what ends it shows the framing, as an object would.
            self.newline_framed = newline_ended
            if newline_ended:
                self._lines = True
        self._dropping_line = self._dropping_garbage = False
        return True

    def _take_object(self, frames: list[dict[str, Any] | BadFrame]) -> int | None:
        """Decode the object at the start of the buffer; return its end."""
        buffer = self._buffer
        if self._scan_pos == 0:
            # Fast path for native framing: the whole line is one object.
            # Search no further than a longest frame, its "\r" and its "\n".
            newline = buffer.find(b"\n", 0, self.max_frame + 2)
            if newline > 0:
                line = bytes(buffer[:newline]).rstrip(b" \t\r")
                if len(line) <= self.max_frame:
                    frame = _decode(line)
                    if isinstance(frame, dict):
                        frames.append(frame)
                        return newline + 1
        end, broken = self._scan()
        if end is None:
            return None
        # A broken frame ends after the newline that broke it.
        self._check_size(end - 1 if broken else end)
        self._reset_scan()
        if broken:
            frames.append(BadFrame(BAD_JSON, "malformed JSON object"))
        else:
            frames.append(_decode(bytes(self._buffer[:end])))
        return end

    def _scan(self) -> tuple[int | None, bool]:
        """Find where the object at the start of the buffer ends.

        Returns ``(end, False)`` for a balanced object, ``(end, True)`` for
        one broken by a raw newline inside a string (never valid JSON, and a
        native peer's next line starts afresh), ``(None, False)`` when more
        bytes are needed.
        """
        buffer = self._buffer
        pos, depth, in_string = self._scan_pos, self._depth, self._in_string
        length = len(buffer)
        while True:
            pattern = _INSIDE_STRING if in_string else _OUTSIDE_STRING
            match = pattern.search(buffer, pos)
            if match is None:
                self._scan_pos, self._depth, self._in_string = length, depth, in_string
                return None, False
            at = match.start()
            char = buffer[at]
            pos = at + 1
            if char == _NEWLINE:
                if in_string or self._lines:
                    return pos, True
            elif in_string:
                if char == _QUOTE:
                    in_string = False
                elif pos >= length:  # a backslash whose escaped byte is yet to come
                    self._scan_pos, self._depth, self._in_string = at, depth, True
                    return None, False
                else:
                    pos += 1
            elif char == _QUOTE:
                in_string = True
            elif char == _OPEN:
                depth += 1
            else:
                depth -= 1
                if depth <= 0:
                    return pos, False

    def _check_size(self, size: int) -> None:
        """Raise :class:`FrameTooLong` past the limit."""
        if size > self.max_frame:
            raise FrameTooLong(self.max_frame)

    def _note_framing(self, end: int) -> None:
        rest = self._buffer[end:].lstrip(b" \t\r")
        self.newline_framed = rest[:1] == b"\n" or self._buffer[end - 1] == _NEWLINE
        if self._buffer[end - 1] == _NEWLINE:
            self._lines = True
        else:
            self._lines_pending = True

    def _reset_scan(self) -> None:
        self._scan_pos, self._depth, self._in_string = 0, 0, False

    def _reset(self) -> None:
        self._reset_scan()
        self._buffer.clear()


_NEWLINE_ONLY = re.compile(rb"\n")
_NOT_AN_OBJECT = BadFrame(BAD_JSON, "expected a JSON object")


def _decode(raw: bytes) -> dict[str, Any] | BadFrame:
    """Decode one frame's bytes: UTF-8 JSON that must be an object."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return BadFrame(BAD_JSON, "frame is not valid UTF-8")
    except (ValueError, RecursionError):
        return BadFrame(BAD_JSON, "frame is not valid JSON")
    if not isinstance(value, dict):
        return _NOT_AN_OBJECT
    return value


# json.dumps with options builds a new encoder on every call (a third of the
# time of encoding a MSG); these are built once.
_NATIVE_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
# Line breaks to str.splitlines() that JSON leaves raw (it escapes only those
# below U+0020): a client that splits its input with splitlines() would cut
# a frame there.
_LINE_BREAK_ESCAPES = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def native_json(obj: dict[str, Any]) -> str:
    """Compact JSON, UTF-8 but for U+0085, U+2028 and U+2029, which are
    escaped (``\\u2028``): one object is one line to any line splitter."""
    text = _NATIVE_ENCODER.encode(obj)
    # isascii() is a flag CPython keeps: the common case costs nothing more.
    if not text.isascii() and _has_raw_line_break(text):
        text = text.translate(_LINE_BREAK_ESCAPES)
    return text


def _has_raw_line_break(text: str) -> bool:
    # Three substring searches: a tenth of the time of one regex search
    # with a character class, and nothing for a Latin-1 string.
    return "\u2028" in text or "\u2029" in text or "\x85" in text


def encode(obj: dict[str, Any], framing: Framing) -> bytes:
    """Encode one object for a connection with the given output framing.

    Native: compact UTF-8 JSON (see :func:`native_json`) and a newline.
    Length-prefixed: its length in 4 bytes, big-endian, then compact ASCII
    JSON (``\\u`` escapes: the peers of that dialect read ASCII only).
    Original: ASCII JSON with no separator, as the original MUCA peers write
    it; ``}{`` inside a string is escaped so that a peer splitting its input
    on ``}{`` still cuts between objects only. WebSocket: the native JSON,
    without the newline, as one text frame.
    """
    if framing is Framing.NATIVE:
        # native_json, inlined: this is every delivery's encoding.
        text = _NATIVE_ENCODER.encode(obj)
        if not text.isascii() and _has_raw_line_break(text):
            text = text.translate(_LINE_BREAK_ESCAPES)
        return text.encode("utf-8") + b"\n"
    if framing is Framing.PREFIXED:
        body = _ASCII_ENCODER.encode(obj).encode("ascii")
        return _LENGTH.pack(len(body)) + body
    if framing is Framing.WEBSOCKET:
        return websocket_text_frame(native_json(obj).encode("utf-8"))
    # Inside one object, "}{" can only stand in a string: structural braces
    # are always separated by ',' or ':'.
    return json.dumps(obj).replace("}{", "}\\u007b").encode("ascii")


def websocket_text_frame(text: bytes) -> bytes:
    """One unfragmented, unmasked WebSocket text frame (RFC 6455 section 5.2)
    holding ``text``, UTF-8: what a server sends when no extension was agreed.

    Built here rather than by the WebSocket library per connection, so that
    a fan-out frames each message once and writes the same bytes to every
    recipient, as for TCP.
    """
    size = len(text)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 0x10000:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + text
