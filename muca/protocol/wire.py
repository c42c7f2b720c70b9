"""The byte stream on a MUCA connection, turned into JSON objects and back.

Both framings of ``PROTOCOL.md`` are accepted on input, always: objects one
per line (native) and objects back to back with no separator (original).
Output framing is chosen per connection with :class:`Framing`.

This module knows nothing of commands or reactors: it cuts frames, decodes
them as UTF-8 JSON, and encodes objects for the output framings (the two
of TCP, and WebSocket text messages).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
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
    WEBSOCKET = "websocket"  # one object per WebSocket text message, UTF-8


#: The framings of a TCP byte stream, which :class:`FrameDecoder` cuts;
#: WebSocket messages are cut by the WebSocket library.
STREAM_FRAMINGS = (Framing.NATIVE, Framing.ORIGINAL)


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame that could not be decoded: the caller answers ``ERROR`` and goes on."""

    code: str
    reason: str


class FrameTooLong(Exception):
    """A frame exceeds the size limit: the caller answers ``ERROR`` and closes.

    :attr:`frames` holds the frames that the same :meth:`FrameDecoder.feed`
    completed before the long one: the peer sent them first.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"frame longer than {limit} bytes")
        self.limit = limit
        self.code = FRAME_TOO_LONG
        self.reason = str(self)
        self.frames: list[dict[str, Any] | BadFrame] = []


_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_BLANKS = re.compile(rb"[ \t\r]*")
_OUTSIDE_STRING = re.compile(rb'[{}"\n]')
_OUTSIDE_STRING_IN_VALUE = re.compile(rb'[{}\[\]"\n]')
_INSIDE_STRING = re.compile(rb'["\\\n]')
_GARBAGE_END = re.compile(rb"[\n{]")
_OPEN, _CLOSE, _QUOTE, _NEWLINE = b'{}"\n'
_OPEN_LIST, _CLOSE_LIST = b"[]"
_OPENERS = (_OPEN, _OPEN_LIST)


class FrameDecoder:
    """Cut a byte stream into JSON objects, whatever the peer's framing.

    Feed it bytes as they arrive; :meth:`feed` returns, in order, a ``dict``
    for every object and a :class:`BadFrame` for every malformed one, and
    raises :class:`FrameTooLong` when a frame outgrows ``max_frame``. It
    never holds more than ``max_frame`` bytes of one frame between calls.
    However the stream is cut into pieces, the frames are the same.

    After the first frame, :attr:`newline_framed` tells whether the peer
    ended it with a newline (native framing) or not (original framing), as
    far as the bytes received so far show: this is what decides a server's
    output framing. Input is cut by the same rule once the byte after the
    first frame has arrived: a newline-framed peer's garbage runs to the end
    of its line and a raw newline inside its object breaks the object;
    otherwise the stream resyncs at the next ``{``.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.newline_framed: bool | None = None
        self._buffer = bytearray()
        # How input is cut: by lines once the peer has shown it frames by
        # lines; decided by the first byte after the first frame.
        self._lines = False
        self._lines_pending = False
        # Where the scan of the value at the start of the buffer stopped,
        # so that a frame arriving byte by byte is scanned once, not N times.
        self._scan_pos = 0
        self._depth = 0
        self._in_string = False

    def feed(self, data: bytes) -> list[dict[str, Any] | BadFrame]:
        """Take more bytes; return the frames they complete."""
        buffer = self._buffer
        buffer += data
        frames: list[dict[str, Any] | BadFrame] = []
        try:
            self._cut(frames)
        except FrameTooLong as error:
            error.frames = frames
            raise
        return frames

    def _cut(self, frames: list[dict[str, Any] | BadFrame]) -> None:
        buffer = self._buffer
        while buffer:
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
            if buffer[0] == _OPEN:
                end = self._take_object(frames)
            else:
                end = self._take_garbage(frames)
            if end is None:
                self._check_size(len(buffer))
                break
            if self.newline_framed is None:
                self._note_framing(end)
            del buffer[:end]

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
        return self._take_scanned(frames, _OUTSIDE_STRING, "object", _decode)

    def _take_scanned(
        self,
        frames: list[dict[str, Any] | BadFrame],
        outside: re.Pattern[bytes],
        what: str,
        decode: Callable[[bytes], dict[str, Any] | BadFrame],
    ) -> int | None:
        """Scan the value at the start of the buffer; decode it once whole.

        Returns where it ends, or ``None`` when more bytes are needed.
        """
        end, broken = self._scan(outside)
        if end is None:
            return None
        # A broken frame ends after the newline that broke it.
        self._check_size(end - 1 if broken else end)
        self._reset_scan()
        if broken:
            frames.append(BadFrame(BAD_JSON, f"malformed JSON {what}"))
        else:
            frames.append(decode(bytes(self._buffer[:end])))
        return end

    def _scan(self, outside: re.Pattern[bytes]) -> tuple[int | None, bool]:
        """Find where the value at the start of the buffer ends.

        ``outside`` is what matters outside strings: braces only for an
        object, braces and brackets for any other value. Returns ``(end,
        False)`` for a balanced value, ``(end, True)`` for one broken by a
        raw newline inside a string (never valid JSON, and a native peer's
        next line starts afresh), ``(None, False)`` when more bytes are
        needed.
        """
        buffer = self._buffer
        pos, depth, in_string = self._scan_pos, self._depth, self._in_string
        length = len(buffer)
        while True:
            pattern = _INSIDE_STRING if in_string else outside
            match = pattern.search(buffer, pos)
            if match is None:
                self._scan_pos, self._depth, self._in_string = length, depth, in_string
                return None, False
            at = match.start()
            char = buffer[at]
            pos = at + 1
            if char == _NEWLINE:
                if in_string or (depth > 0 and self._lines):
                    return pos, True
            elif in_string:
                if char == _QUOTE:
                    in_string = False
                    if depth == 0:  # a string on its own
                        return pos, False
                elif pos >= length:  # a backslash whose escaped byte is yet to come
                    self._scan_pos, self._depth, self._in_string = at, depth, True
                    return None, False
                else:
                    pos += 1
            elif char == _QUOTE:
                in_string = True
            elif char in _OPENERS:
                depth += 1
            else:
                depth -= 1
                if depth <= 0:
                    return pos, False

    def _take_garbage(self, frames: list[dict[str, Any] | BadFrame]) -> int | None:
        """Drop what is not an object, as one frame.

        A newline-framed peer's garbage runs to the end of its line.
        Otherwise a JSON string or list is dropped whole (objects inside a
        list must not pass for commands), and anything else runs up to the
        next newline or ``{``, where the stream resyncs.
        """
        buffer = self._buffer
        if self._lines:
            newline = buffer.find(b"\n")
            if newline < 0:
                return None
            self._check_size(newline)
            frames.append(_not_an_object(bytes(buffer[:newline])))
            return newline + 1
        if buffer[0] in b'["':
            return self._take_scanned(
                frames, _OUTSIDE_STRING_IN_VALUE, "value", _not_an_object
            )
        match = _GARBAGE_END.search(buffer)
        if match is None:
            return None
        newline_ended = match.group() == b"\n"
        end = match.end() if newline_ended else match.start()
        self._check_size(end - 1 if newline_ended else end)
        frames.append(_not_an_object(bytes(buffer[:end])))
        return end

    def _check_size(self, size: int) -> None:
        """Raise :class:`FrameTooLong` (and drop the buffer) past the limit."""
        if size > self.max_frame:
            self._reset()
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


_NOT_AN_OBJECT = BadFrame(BAD_JSON, "expected a JSON object")


def _not_an_object(raw: bytes) -> BadFrame:
    """The error for a frame that cannot be a command."""
    frame = _decode(raw)
    return frame if isinstance(frame, BadFrame) else _NOT_AN_OBJECT


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
# time of encoding a MSG); this one is built once.
_NATIVE_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(obj: dict[str, Any], framing: Framing) -> bytes:
    """Encode one object for a connection with the given output framing.

    Native: compact UTF-8 JSON and a newline. Original: ASCII JSON with no
    separator, as the original MUCA peers write it; ``}{`` inside a string
    is escaped so that a peer splitting its input on ``}{`` still cuts
    between objects only. WebSocket: the native JSON, without the newline,
    as one text frame.
    """
    if framing is Framing.NATIVE:
        return _NATIVE_ENCODER.encode(obj).encode("utf-8") + b"\n"
    if framing is Framing.WEBSOCKET:
        return websocket_text_frame(_NATIVE_ENCODER.encode(obj).encode("utf-8"))
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
