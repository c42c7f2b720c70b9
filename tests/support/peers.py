"""Peers written to the assignment by others, as they behave on the wire.

Each is a small reader (bytes in, objects out, :class:`PeerDropped` when the
peer would give up) and a :class:`~tests.support.RawClient` subclass that
uses it and drops the connection as that peer does. They work on either
side: connect them to a server (:func:`tests.support.connect` with ``kind``)
or serve them (``ServerFactory.forProtocol(BraceDepthPeer)``) to a client.

- :class:`BraceDepthPeer`: cuts its input by counting ``{`` and ``}`` outside
  strings; any byte between objects, a ``\\n`` included, is a command it
  does not understand, and it drops the connection.
- :class:`AsciiOnlyPeer`: decodes its input as ASCII and dies on the first
  other byte (``UnicodeDecodeError``), as the original server does.
- :class:`LengthPrefixedPeer`: every object after a 4-byte big-endian length,
  both ways; it decodes each frame as ASCII and dies on any other byte.
- :class:`LineSplittingPeer`: native framing, but its input is cut with
  ``str.splitlines()``, which also breaks at U+0085, U+2028 and U+2029;
  a line that is no whole object ends it.
- :class:`OneReadOnePeer`: original framing; every ``recv()`` is taken as
  one JSON object, so two objects in one read are one it cannot parse
  (and ignores, as such clients do).

Written from the behaviour described in issue 9, not from their code.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from tests.support import RawClient

_LENGTH = struct.Struct(">I")
_JSON = json.JSONDecoder()


class PeerDropped(Exception):
    """The peer met something it cannot read and drops the connection."""


def ascii_json(obj: Any) -> bytes:
    """One object as the original client writes it: ASCII, no separator."""
    return json.dumps(obj, ensure_ascii=True).encode("ascii")


def length_prefixed(obj: Any) -> bytes:
    """One object in the length-prefixed dialect (compact UTF-8 JSON)."""
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _LENGTH.pack(len(body)) + body


class BraceDepthReader:
    """Splits a stream into objects by brace depth outside strings."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pos = 0
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def feed(self, data: bytes) -> list[Any]:
        """Take bytes; return the objects they complete, or raise
        :class:`PeerDropped` at the first byte outside an object."""
        self._buffer += data
        objects = []
        while self._pos < len(self._buffer):
            byte = self._buffer[self._pos]
            self._pos += 1
            if self._depth == 0:
                if byte != ord("{"):
                    raise PeerDropped(f"unknown command {bytes([byte])!r}")
                self._depth = 1
            elif self._in_string:
                if self._escaped:
                    self._escaped = False
                elif byte == ord("\\"):
                    self._escaped = True
                elif byte == ord('"'):
                    self._in_string = False
            elif byte == ord('"'):
                self._in_string = True
            elif byte == ord("{"):
                self._depth += 1
            elif byte == ord("}"):
                self._depth -= 1
                if self._depth == 0:
                    frame = bytes(self._buffer[: self._pos])
                    del self._buffer[: self._pos]
                    self._pos = 0
                    objects.append(json.loads(frame.decode("utf-8")))
        return objects


class AsciiOnlyReader:
    """Decodes input as ASCII, then reads JSON objects with optional
    whitespace between them; any other byte ends it."""

    def __init__(self) -> None:
        self._text = ""

    def feed(self, data: bytes) -> list[Any]:
        """Take bytes; return the objects they complete, or raise
        :class:`PeerDropped` on a non-ASCII byte."""
        try:
            self._text += data.decode("ascii")
        except UnicodeDecodeError as error:
            raise PeerDropped(f"UnicodeDecodeError: {error}") from None
        objects = []
        while True:
            text = self._text.lstrip(" \t\r\n")
            if not text:
                self._text = ""
                return objects
            try:
                obj, end = _JSON.raw_decode(text)
            except json.JSONDecodeError:
                self._text = text
                return objects
            objects.append(obj)
            self._text = text[end:]


class LengthPrefixedReader:
    """Reads frames of a 4-byte big-endian length and that many bytes of
    ASCII JSON."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        """Take bytes; return the objects they complete, or raise
        :class:`PeerDropped` on a frame that is not JSON."""
        self._buffer += data
        objects = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_LENGTH.size : end])
            del self._buffer[:end]
            try:
                objects.append(json.loads(body.decode("ascii")))
            except UnicodeDecodeError as error:
                raise PeerDropped(f"UnicodeDecodeError: {error}") from None
            except ValueError as error:
                raise PeerDropped(f"bad frame {body[:40]!r}: {error}") from None
        return objects


class LineSplittingReader:
    """Decodes input as UTF-8 and cuts it with ``str.splitlines()``: every
    line must be one whole JSON object."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> list[Any]:
        """Take bytes; return the objects of the lines they complete, or
        raise :class:`PeerDropped` on a line that is not one object."""
        complete, _, self._tail = (self._tail + data).rpartition(b"\n")
        objects = []
        for line in complete.decode("utf-8").splitlines():
            try:
                objects.append(json.loads(line))
            except ValueError as error:
                raise PeerDropped(f"bad line {line[:40]!r}: {error}") from None
        return objects


class OneReadOneReader:
    """Takes each read as one JSON object; a read that is not one (two
    objects in one read) is lost, and counted in :attr:`unreadable`."""

    def __init__(self) -> None:
        self.unreadable = 0

    def feed(self, data: bytes) -> list[Any]:
        """Take one read; return its object, or nothing."""
        try:
            return [json.loads(data.decode("ascii"))]
        except ValueError:
            self.unreadable += 1
            return []


class _ReaderPeer(RawClient):
    """A :class:`RawClient` that reads with a peer's reader and drops the
    connection where that peer would; :attr:`dropped` says why."""

    def __init__(self) -> None:
        super().__init__()
        self.reader = self.make_reader()
        self.dropped: str | None = None

    def make_reader(self) -> Any:
        """The reader this peer uses."""
        raise NotImplementedError

    def dataReceived(self, data: bytes) -> None:
        if self.dropped is not None:
            return
        self.received += data
        try:
            self.objects += self.reader.feed(data)
        except PeerDropped as error:
            self.dropped = str(error)
            self.transport.loseConnection()
        self._serve()


class BraceDepthPeer(_ReaderPeer):
    """Objects back to back out; brace-depth reader in (drops on a stray byte)."""

    def make_reader(self) -> BraceDepthReader:
        """A brace-depth reader."""
        return BraceDepthReader()

    def send_json(self, obj: Any, newline: bool = False, **dumps: Any) -> None:
        """Write one object as compact JSON with no separator (``newline`` ignored)."""
        dumps.setdefault("separators", (",", ":"))
        dumps.setdefault("ensure_ascii", False)
        self.send(json.dumps(obj, **dumps).encode("utf-8"))


class AsciiOnlyPeer(_ReaderPeer):
    """ASCII JSON back to back out; ASCII-only reader in (drops on other bytes)."""

    def make_reader(self) -> AsciiOnlyReader:
        """An ASCII-only reader."""
        return AsciiOnlyReader()

    def send_json(self, obj: Any, newline: bool = False, **dumps: Any) -> None:
        """Write one object as the original client does (``newline`` ignored)."""
        self.send(ascii_json(obj))


class LengthPrefixedPeer(_ReaderPeer):
    """Length-prefixed objects both ways."""

    def make_reader(self) -> LengthPrefixedReader:
        """A length-prefixed reader."""
        return LengthPrefixedReader()

    def send_json(self, obj: Any, newline: bool = False, **dumps: Any) -> None:
        """Write one object after its length (``newline`` ignored)."""
        self.send(length_prefixed(obj))


class LineSplittingPeer(_ReaderPeer):
    """Native framing out; lines cut by ``str.splitlines()`` in."""

    def make_reader(self) -> LineSplittingReader:
        """A reader that splits with ``str.splitlines()``."""
        return LineSplittingReader()


class OneReadOnePeer(_ReaderPeer):
    """ASCII JSON back to back out; one object per ``recv()`` in."""

    def make_reader(self) -> OneReadOneReader:
        """A reader that takes each read as one object."""
        return OneReadOneReader()

    def send_json(self, obj: Any, newline: bool = False, **dumps: Any) -> None:
        """Write one object as the original client does (``newline`` ignored)."""
        self.send(ascii_json(obj))
