"""The MUCA server: the protocol for one connection and the factory for all.

Glue between the wire (``muca.wire``), the commands (``muca.messages``) and
the room (``muca.room``): per-connection state, output framing, logging,
and the coalescing of roster updates.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from twisted.internet import interfaces, tcp
from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca import messages
from muca.messages import (
    ALREADY_JOINED,
    FROM_MISMATCH,
    GROUP,
    NOT_JOINED,
    PRESENCE_DELTA,
    UNKNOWN_RECIPIENT,
    Join,
    JoinRefused,
    ProtocolError,
    Send,
)
from muca.room import Member, Room
from muca.wire import (
    DEFAULT_MAX_FRAME,
    BadFrame,
    FrameDecoder,
    FrameTooLong,
    Framing,
    encode,
)

DEFAULT_LIST_INTERVAL = 0.1
# A roster update costs a write to every member, and the members' clients as
# much again: past this many members the interval grows with the room (0.5 s
# at 10,000 with the default), so that a storm of joins keeps those costs to
# a bounded share of the time instead of growing with N² per second.
LIST_INTERVAL_MEMBERS = 2000

# What ChatProtocol.send reads of a TCP transport to know that nothing is
# queued ahead (twisted.internet.abstract.FileDescriptor's write buffers).
_BUFFER_ATTRIBUTES = ("_tempDataLen", "dataBuffer", "TLS", "disconnecting")

log = Logger()


class Payload:
    """One object to deliver, encoded at most once per output framing."""

    __slots__ = ("obj", "_native", "_original")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self._native: bytes | None = None
        self._original: bytes | None = None

    def native(self) -> bytes:
        """The object in native framing."""
        if self._native is None:
            self._native = encode(self.obj, Framing.NATIVE)
        return self._native

    def original(self) -> bytes:
        """The object in original framing."""
        if self._original is None:
            self._original = encode(self.obj, Framing.ORIGINAL)
        return self._original


class ChatProtocol(Protocol):
    """One client connection: frames in, commands handled, frames out."""

    factory: ChatFactory

    def __init__(self) -> None:
        self.member: Member | None = None
        self.framing: Framing | None = None
        self.peer = "?"
        self._decoder: FrameDecoder | None = None
        self._closing = False
        # The socket under a plain TCP transport, for send()'s fast path.
        self._socket: Any = None

    # Twisted callbacks

    def connectionMade(self) -> None:
        self._decoder = FrameDecoder(self.factory.max_frame)
        self.peer = _describe(self.transport.getPeer())
        if interfaces.ITCPTransport.providedBy(self.transport):
            # Small messages must not wait for Nagle and delayed ACKs.
            self.transport.setTcpNoDelay(True)
            self.transport.setTcpKeepAlive(True)
        if isinstance(self.transport, tcp.Connection) and all(
            hasattr(self.transport, name) for name in _BUFFER_ATTRIBUTES
        ):
            self._socket = self.transport.getHandle()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        assert self._decoder is not None
        try:
            frames = self._decoder.feed(data)
        except FrameTooLong as error:
            self._decide_framing()
            self.send_error(error.code, error.reason)
            self.close()
            return
        for frame in frames:
            if self._closing:
                return
            if self.framing is None:
                self._decide_framing()
            if isinstance(frame, BadFrame):
                self.send_error(frame.code, frame.reason)
                continue
            try:
                self._handle(frame)
            except Exception:
                log.failure(
                    "unexpected error handling a frame from {peer}", peer=self.peer
                )
                self.send_error(
                    messages.BAD_COMMAND, "the server could not handle this"
                )

    def connectionLost(self, reason: Failure = None) -> None:
        self._closing = True
        if self.member is not None:
            self.factory.leave(self.member, self.peer)
            self.member = None

    # Writing

    def write(self, payload: Payload) -> None:
        """Write one payload in this connection's framing."""
        if self.framing is Framing.ORIGINAL:
            self.transport.write(payload.original())
        else:
            self.transport.write(payload.native())

    def send(self, obj: dict[str, Any]) -> None:
        """Encode and write one object to this connection only (a reply).

        A reply goes straight to the socket when nothing is queued ahead of
        it, instead of waiting in the transport for the next reactor turn.
        That matters for ``ACK``: a roster update written while the ``ACK``
        still waits would make the transport join the two into a private
        copy of the whole ``LIST``, per new member (hundreds of MB during a
        storm of joins). Fan-out keeps using ``transport.write``, which
        coalesces one turn's messages to a connection into one ``send``.
        """
        payload = Payload(obj)
        data = (
            payload.original() if self.framing is Framing.ORIGINAL else payload.native()
        )
        transport = self.transport
        sock = self._socket
        if (
            sock is None
            or transport._tempDataLen
            or transport.dataBuffer
            or transport.TLS
            or transport.disconnecting
            or not transport.connected
        ):
            transport.write(data)
            return
        try:
            sent = sock.send(data)
        except OSError:
            # Full or broken: the transport buffers it, or reports the loss.
            sent = 0
        if sent < len(data):
            transport.write(data[sent:])

    def send_error(self, code: str, reason: str, ref: str | None = None) -> None:
        """Write an ``ERROR``."""
        self.send(messages.error_payload(code, reason, ref))

    def close(self) -> None:
        """Close after what is written has been sent; ignore further input."""
        self._closing = True
        self.transport.loseConnection()

    # Commands

    def _decide_framing(self) -> None:
        assert self._decoder is not None
        if self.framing is None:
            native = self._decoder.newline_framed is not False
            self.framing = Framing.NATIVE if native else Framing.ORIGINAL

    def _handle(self, obj: dict[str, Any]) -> None:
        if obj.get("CMD") == "JOIN" and self.member is not None:
            self.send(
                messages.ack_fail_payload(ALREADY_JOINED, "you have already joined")
            )
            return
        try:
            command = messages.parse_client_command(obj)
        except JoinRefused as refusal:
            self._refuse(obj, refusal)
            return
        except ProtocolError as error:
            self.send_error(error.code, error.reason, error.ref)
            return
        if isinstance(command, Join):
            self._join(command)
        else:
            self._send(command)

    def _join(self, join: Join) -> None:
        if join.version >= 2:
            self.framing = Framing.NATIVE
        try:
            self.member = self.factory.join(self, join)
        except JoinRefused as refusal:
            self._refuse({"UID": join.uid, "UN": join.nickname}, refusal)
            return
        self.send(messages.ack_okay_payload())

    def _refuse(self, obj: dict[str, Any], refusal: JoinRefused) -> None:
        log.info(
            "refused join of {uid!r} ({nickname!r}) from {peer}: {code} {reason}",
            uid=obj.get("UID"),
            nickname=obj.get("UN"),
            peer=self.peer,
            code=refusal.code,
            reason=refusal.reason,
        )
        self.send(messages.ack_fail_payload(refusal.code, refusal.reason))

    def _send(self, send: Send) -> None:
        member = self.member
        if member is None:
            self.send_error(NOT_JOINED, "join the chat room before sending", "SEND")
            return
        if send.sender != member.uid:
            self.send_error(
                FROM_MISMATCH,
                f"FROM must be your own user id {member.uid!r}",
                "SEND",
            )
            return
        try:
            self.factory.deliver(member, send)
        except ProtocolError as error:
            self.send_error(error.code, error.reason, error.ref)


class ChatFactory(ServerFactory):
    """The server's shared state: the room, the limits, roster coalescing.

    A burst of joins and leaves becomes one roster update: the first change
    after a quiet spell goes out at the end of the reactor turn, later ones
    at most once per ``list_interval`` seconds, or per ``list_interval``
    times members / ``LIST_INTERVAL_MEMBERS`` in a larger room.
    """

    protocol = ChatProtocol

    def __init__(
        self,
        clock: IReactorTime | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        list_interval: float = DEFAULT_LIST_INTERVAL,
        capacity: int | None = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[assignment]
        self.clock = clock
        self.max_frame = max_frame
        self.list_interval = list_interval
        self.list_interval_members = LIST_INTERVAL_MEMBERS
        self.room = Room(capacity)
        self._roster_call: DelayedCall | None = None
        self._last_roster = float("-inf")

    # Joins and leaves

    def join(self, connection: ChatProtocol, join: Join) -> Member:
        """Add a connection to the room; raises :class:`JoinRefused`."""
        member = self.room.join(
            connection, join.nickname, join.uid, PRESENCE_DELTA in join.caps
        )
        log.info(
            "{uid!r} joined as {nickname!r} from {peer}",
            uid=join.uid,
            nickname=join.nickname,
            peer=connection.peer,
        )
        self._schedule_roster()
        return member

    def leave(self, member: Member, peer: str) -> None:
        """Remove a member whose connection has gone."""
        if self.room.leave(member):
            log.info("{uid!r} left from {peer}", uid=member.uid, peer=peer)
            self._schedule_roster()

    # Messages

    def deliver(self, sender: Member, send: Send) -> None:
        """Route one ``SEND`` and write the ``MSG`` to every recipient.

        Raises :class:`ProtocolError` when nobody can receive it; reports
        unknown recipients to the sender after delivering to the others.
        """
        route = self.room.route(sender, send.to)
        if self._roster_call is not None and self.room.is_pending_join(sender):
            # Recipients should know a sender's nickname before its first words.
            self._roster_call.cancel()
            self._send_roster()
        if route.recipients:
            to = [m.uid for m in route.recipients] if route.kind == GROUP else None
            payload = Payload(
                messages.message_payload(
                    route.kind, send.text, sender.uid, int(time.time() * 1000), to
                )
            )
            _write_all(payload, route.recipients)
        if route.unknown:
            names = ", ".join(route.unknown)
            sender.connection.send_error(
                UNKNOWN_RECIPIENT, f"not delivered to unknown user ids: {names}", "SEND"
            )

    # Roster updates

    def _schedule_roster(self) -> None:
        if self._roster_call is None:
            interval = self.list_interval * max(
                1.0, len(self.room) / self.list_interval_members
            )
            wait = self._last_roster + interval - self.clock.seconds()
            self._roster_call = self.clock.callLater(max(0.0, wait), self._send_roster)

    def _send_roster(self) -> None:
        self._roster_call = None
        self._last_roster = self.clock.seconds()
        update = self.room.take_roster_update()
        if update is None:
            return
        if update.list_recipients:
            _write_all(Payload(update.full_list), update.list_recipients)
        if update.delta is not None:
            _write_all(Payload(update.delta), update.delta_recipients)

    def stopFactory(self) -> None:
        if self._roster_call is not None and self._roster_call.active():
            self._roster_call.cancel()
        self._roster_call = None


def _write_all(payload: Payload, members: Iterable[Member]) -> None:
    """Fan-out: the same encoded bytes to every member."""
    native = payload.native()
    for member in members:
        connection = member.connection
        if connection.framing is Framing.ORIGINAL:
            connection.transport.write(payload.original())
        else:
            connection.transport.write(native)


def _describe(address: Any) -> str:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"{host}:{port}"
    name = getattr(address, "name", None)
    return str(name) if name else "local"
