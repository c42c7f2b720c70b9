"""Small chat servers in the manner of independent ones, for the client tests.

:class:`PickyRoom` is a room as servers written to the same assignment keep
it: it cuts its input by brace depth and answers objects back to back with
no separator. Like those servers, it is strict: a byte outside an object
(the ``"\\n"`` after a newline-framed object) is read as a command that
cannot be understood and ends the connection; with ``ascii_only``, a
non-ASCII byte kills the whole room, as ``bytes.decode("ascii")`` did in the
original server. :class:`RecordingRelay` sits between a client and a real
server and keeps the bytes each side wrote.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.portforward import (
    ProxyClient,
    ProxyClientFactory,
    ProxyFactory,
    ProxyServer,
)


class PickyPeer(Protocol):
    """One connection to a :class:`PickyRoom`."""

    factory: PickyRoom

    def connectionMade(self) -> None:
        self.received = bytearray()
        self._buffer = ""
        self.uid: str | None = None
        self.nickname = ""
        self.factory.peers.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        try:
            text = data.decode("ascii" if self.factory.ascii_only else "utf-8")
        except UnicodeDecodeError:
            self.factory.die(f"cannot decode {data!r}")
            return
        self._buffer += text
        while self._buffer and self.connected:
            end = _object_end(self._buffer)
            if end is None:
                if not self._buffer.startswith("{"):
                    self._drop(f"not a command: {self._buffer!r}")
                return
            obj, self._buffer = json.loads(self._buffer[:end]), self._buffer[end:]
            self._command(obj)

    def _command(self, obj: dict[str, Any]) -> None:
        room = self.factory
        if obj.get("CMD") == "JOIN":
            self.uid, self.nickname = obj["UID"], obj["UN"]
            ack: dict[str, Any] = {"CMD": "ACK", "TYPE": "OKAY"}
            if room.max_frame is not None:
                ack["MAX_FRAME"] = room.max_frame
            self.write(ack)
            room.broadcast({"CMD": "LIST", "DATA": room.peer_list()})
        elif obj.get("CMD") == "SEND":
            to = obj["TO"]
            kind = "ALL" if not to else "PRIVATE" if len(to) == 1 else "GROUP"
            message = {"CMD": "MSG", "TYPE": kind, "MSG": obj["MSG"], "FROM": self.uid}
            for peer in room.joined():
                if not to or peer.uid in to:
                    peer.write(message)
        else:
            self._drop(f"unknown command {obj!r}")

    def write(self, obj: dict[str, Any]) -> None:
        """Send one object, ASCII JSON with no separator."""
        self.transport.write(json.dumps(obj).encode("ascii"))

    def _drop(self, why: str) -> None:
        self.factory.drops.append(why)
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        room = self.factory
        room.peers.remove(self)
        if self.uid is not None and not room.dead:
            room.broadcast({"CMD": "LIST", "DATA": room.peer_list()})


def _object_end(text: str) -> int | None:
    """Where the object at the start of ``text`` ends, by brace depth."""
    if not text.startswith("{"):
        return None
    depth, in_string, escaped = 0, False, False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


class PickyRoom(Factory):
    """A strict independent server's room (see the module docstring)."""

    protocol = PickyPeer

    def __init__(self, ascii_only: bool = False, max_frame: int | None = None) -> None:
        self.ascii_only = ascii_only
        self.max_frame = max_frame  # announced in ACK OKAY as MAX_FRAME
        self.peers: list[PickyPeer] = []
        self.drops: list[str] = []  # why a connection was dropped
        self.dead: str | None = None  # why the whole room died

    def joined(self) -> list[PickyPeer]:
        """The peers that have joined, in order."""
        return [peer for peer in self.peers if peer.uid is not None]

    def peer_list(self) -> list[dict[str, str]]:
        """The LIST entries."""
        return [{"UN": peer.nickname, "UID": peer.uid or ""} for peer in self.joined()]

    def broadcast(self, obj: dict[str, Any]) -> None:
        """Send to every joined peer."""
        for peer in self.joined():
            peer.write(obj)

    def die(self, why: str) -> None:
        """The room's server crashed: every connection ends."""
        self.dead = why
        for peer in list(self.peers):
            peer.transport.abortConnection()


class _RecordingClient(ProxyClient):
    def dataReceived(self, data: bytes) -> None:
        self.peer.factory.received += data
        super().dataReceived(data)


class _RecordingClientFactory(ProxyClientFactory):
    protocol = _RecordingClient


class _RecordingProxy(ProxyServer):
    clientProtocolFactory = _RecordingClientFactory

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        self.factory.sent += data
        super().dataReceived(data)


class RecordingRelay(ProxyFactory):
    """Relays clients to ``host:port``; :attr:`sent` is what they wrote,
    :attr:`received` what the server wrote to them.

    Closing one of :attr:`connections` is, for its client, the server
    closing the connection.
    """

    protocol = _RecordingProxy

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.sent = bytearray()
        self.received = bytearray()
        self.connections: list[ProxyServer] = []
