"""The MUCA server: the protocol for one connection and the factory for all.

Glue between the wire (``muca.wire``), the commands (``muca.messages``) and
the room (``muca.room``): per-connection state, output framing, logging,
and the coalescing of roster updates.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from twisted.cred.portal import Portal
from twisted.internet import interfaces
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from muca import messages
from muca.auth import check_password
from muca.limits import (
    DEFAULT_BURST,
    DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_RATE,
    ConnectionCounter,
    TokenBucket,
)
from muca.messages import (
    ALREADY_JOINED,
    AUTH_FAILED,
    FROM_MISMATCH,
    GROUP,
    NOT_JOINED,
    PRESENCE_DELTA,
    RATE_LIMITED,
    SERVER_FULL,
    SLOW_CONSUMER,
    UNKNOWN_RECIPIENT,
    Join,
    JoinRefused,
    ProtocolError,
    Send,
)
from muca.output import Outbox, Payload, plain_socket, transport_idle
from muca.room import Member, Room
from muca.wire import (
    DEFAULT_MAX_FRAME,
    BadFrame,
    FrameDecoder,
    FrameTooLong,
    Framing,
)

DEFAULT_LIST_INTERVAL = 0.1
# A roster update costs a write to every member, and the members' clients as
# much again: past this many members the interval grows with the room (0.5 s
# at 10,000 with the default), so that a storm of joins keeps those costs to
# a bounded share of the time instead of growing with N² per second.
LIST_INTERVAL_MEMBERS = 2000
DEFAULT_MAX_OUTBOUND = 4 * 1024 * 1024
DEFAULT_JOIN_TIMEOUT = 30.0
# Seconds a closed connection gets to take what is still buffered for it.
DEFAULT_CLOSE_GRACE = 1.0
# Seconds a shutdown waits for the connections to close before dropping them.
DEFAULT_SHUTDOWN_WAIT = 1.0
# Seconds a connection over a cap may take to send its JOIN (or anything)
# and be told the server is full.
REFUSED_WAIT = 5.0

log = Logger()


@implementer(interfaces.IPushProducer)
class ChatProtocol(Protocol, TimeoutMixin):
    """One client connection: frames in, commands handled, frames out.

    It is also the push producer registered on its own transport: the
    transport pauses it past its buffer threshold and resumes it once
    drained. Bytes written while paused are counted; past the factory's
    ``max_outbound`` the peer is a slow consumer and is disconnected.
    """

    factory: ChatFactory

    def __init__(self) -> None:
        self.member: Member | None = None
        self.framing: Framing | None = None
        self.peer = "?"
        self.address: str | None = None
        self._decoder: FrameDecoder | None = None
        self._closing = False
        self._admitted = False
        self._paused = False
        self._queued = 0
        self._bucket: TokenBucket | None = None
        # Frames waiting while a password check is under way.
        self._backlog: deque[Any] = deque()
        self._checking = False
        self._abort_call: IDelayedCall | None = None
        self._registered = False
        self._close_started = False
        # The socket under a plain TCP transport, for send()'s fast path.
        self._socket: Any = None
        # Why the server cannot take this connection, when it is over a cap.
        self._refusal: str | None = None

    # Twisted callbacks

    def connectionMade(self) -> None:
        factory = self.factory
        self._decoder = FrameDecoder(factory.max_frame)
        peer = self.transport.getPeer()
        self.peer = _describe(peer)
        self.address = getattr(peer, "host", None)
        if interfaces.ITCPTransport.providedBy(self.transport):
            # Small messages must not wait for Nagle and delayed ACKs.
            self.transport.setTcpNoDelay(True)
            self.transport.setTcpKeepAlive(True)
        self._socket = plain_socket(self.transport)
        if self._socket is not None:
            _detect_dead_peers_sooner(self._socket)
        self.transport.registerProducer(self, True)
        self._registered = True
        factory.connections.add(self)
        refusal = factory.admit(self)
        if refusal is not None:
            log.info(
                "refused connection from {peer}: {reason}",
                peer=self.peer,
                reason=refusal,
            )
            # Answered at its first frame, so that a JOIN gets the ACK FAIL
            # every client understands; one that says nothing is closed soon.
            self._refusal = refusal
            self.setTimeout(REFUSED_WAIT)
            return
        self._admitted = True
        if factory.rate is not None:
            self._bucket = TokenBucket(factory.rate, factory.burst, factory.clock)
        if factory.join_timeout is not None:
            self.setTimeout(factory.join_timeout)

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        assert self._decoder is not None
        try:
            frames = self._decoder.feed(data)
        except FrameTooLong as error:
            frames = [*error.frames, error]
        if self._checking:
            self._backlog.extend(frames)
        else:
            self._handle_frames(frames)

    def connectionLost(self, reason: Failure = None) -> None:
        self._closing = True
        self._close_started = True
        self.setTimeout(None)
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        self._backlog.clear()
        factory = self.factory
        factory.connections.discard(self)
        if self._admitted:
            self._admitted = False
            factory.release(self)
        if self.member is not None:
            factory.leave(self.member, self.peer)
            self.member = None

    def timeoutConnection(self) -> None:
        if self._refusal is not None:
            self._decide_framing()
            self.send_error(SERVER_FULL, self._refusal)
            self.close()
            return
        log.info(
            "closing {peer}: no JOIN within {timeout} s",
            peer=self.peer,
            timeout=self.factory.join_timeout,
        )
        self.close()

    def callLater(self, period: float, func: Any) -> IDelayedCall:
        """TimeoutMixin's timer, on the factory's clock."""
        return self.factory.clock.callLater(period, func)

    # IPushProducer: the transport's signals about our output

    def pauseProducing(self) -> None:
        """The transport's buffer is past its threshold."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The transport's buffer has drained."""
        self._paused = False
        self._queued = 0

    def stopProducing(self) -> None:
        """The connection is going away."""
        self._closing = True

    # Writing

    def write_bytes(self, data: bytes) -> None:
        """Write encoded bytes, minding the outbound limit."""
        if self._paused:
            self._queued += len(data)
            if self._queued > self.factory.max_outbound:
                self._too_slow()
                return
        self.transport.write(data)

    def send(self, obj: dict[str, Any]) -> None:
        """Encode and write one object to this connection only (a reply)."""
        outbox = self.factory.outbox
        if outbox:
            # Behind what this turn's fan-out queued for us, not ahead of it.
            outbox.flush_one(self)
        self.write_now(Payload(obj).for_framing(self.framing))

    def write_now(self, data: bytes) -> None:
        """Write bytes straight to the socket when nothing is queued ahead.

        One ``send`` instead of the transport's buffering, ``epoll_ctl`` to
        watch for writability, a writable event, ``send`` and ``epoll_ctl``
        again; what the kernel does not take goes to :meth:`write_bytes`.
        For ``ACK`` it also matters that it leaves at once: a roster update
        written while the ``ACK`` still waited would make the transport join
        the two into a private copy of the whole ``LIST``, per new member
        (hundreds of MB during a storm of joins). TLS, a paused or closing
        transport, or one with bytes queued, always go through
        :meth:`write_bytes`.
        """
        sock = self._socket
        if sock is None or self._paused or not transport_idle(self.transport):
            self.write_bytes(data)
            return
        try:
            sent = sock.send(data)
        except OSError:
            # Full or broken: the transport buffers it, or reports the loss.
            sent = 0
        if sent < len(data):
            self.write_bytes(data[sent:])

    def send_error(self, code: str, reason: str, ref: str | None = None) -> None:
        """Write an ``ERROR``."""
        self.send(messages.error_payload(code, reason, ref))

    def close(self, grace: float | None = None) -> None:
        """Close after what is written has been sent; ignore further input.

        A peer that does not read what is left within ``grace`` seconds (the
        factory's ``close_grace`` by default) is cut off, so that a
        connection being closed cannot hold its buffer and socket forever.
        """
        if self._close_started:
            return
        self._close_started = True
        self._closing = True
        self.setTimeout(None)
        if self.member is not None:
            # Out of the room now: nothing more is queued for a connection
            # on its way out, and the others hear of it at once.
            self.factory.leave(self.member, self.peer)
            self.member = None
        transport = self.transport
        if self._registered:
            # A registered producer would keep the transport open after the
            # flush.
            self._registered = False
            transport.unregisterProducer()
        transport.loseConnection()
        if grace is None:
            grace = self.factory.close_grace
        self._abort_call = self.factory.clock.callLater(grace, self.abort)

    def abort(self) -> None:
        """Drop the connection now, and whatever is still buffered for it."""
        self._closing = True
        self._abort_call = None
        self.transport.abortConnection()

    def _too_slow(self) -> None:
        if self._closing:
            return
        factory = self.factory
        log.info(
            "disconnecting {peer}: slow consumer, over {limit} bytes waiting",
            peer=self.peer,
            limit=factory.max_outbound,
        )
        self._closing = True
        # Behind everything queued: it arrives only if the peer reads again
        # within the grace period.
        payload = Payload(
            messages.error_payload(
                SLOW_CONSUMER, "you did not read fast enough; disconnecting"
            )
        )
        self.transport.write(payload.for_framing(self.framing))
        self.close()

    # Frames and commands

    def _handle_frames(self, frames: Iterable[Any]) -> None:
        for position, frame in enumerate(frames):
            if self._closing:
                return
            if self._checking:
                # A password check started: the rest waits for its answer.
                self._backlog.extend(list(frames)[position:])
                return
            self._handle_frame(frame)

    def _handle_frame(self, frame: Any) -> None:
        if self.framing is None:
            self._decide_framing()
        if isinstance(frame, FrameTooLong):
            self.send_error(frame.code, frame.reason)
            self.close()
            return
        if self._refusal is not None:
            if isinstance(frame, dict) and frame.get("CMD") == "JOIN":
                self.send(messages.ack_fail_payload(SERVER_FULL, self._refusal))
            else:
                self.send_error(SERVER_FULL, self._refusal)
            self.close()
            return
        bucket = self._bucket
        cmd = frame.get("CMD") if isinstance(frame, dict) else None
        # Every JOIN gets its one ACK (the protocol promises it); a JOIN
        # flood is answered by ALREADY_JOINED or UID_TAKEN, not delivered.
        if bucket is not None and cmd != "JOIN" and not bucket.take():
            self.send_error(
                RATE_LIMITED,
                "too many messages: this one was dropped",
                cmd if isinstance(cmd, str) and messages.is_text(cmd) else None,
            )
            return
        if isinstance(frame, BadFrame):
            self.send_error(frame.code, frame.reason)
            return
        try:
            self._handle(frame)
        except Exception:
            log.failure("unexpected error handling a frame from {peer}", peer=self.peer)
            self.send_error(messages.BAD_COMMAND, "the server could not handle this")

    def _decide_framing(self) -> None:
        assert self._decoder is not None
        if self.framing is None:
            native = self._decoder.newline_framed is not False
            self.framing = Framing.NATIVE if native else Framing.ORIGINAL

    def _handle(self, obj: dict[str, Any]) -> None:
        if obj.get("CMD") == "JOIN" and self.member is not None:
            self._refuse(obj, JoinRefused(ALREADY_JOINED, "you have already joined"))
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
        portal = self.factory.portal
        if portal is None:
            self._admit_join(join)
            return
        checked = check_password(portal, join.uid, join.password)
        if checked.called:
            # The usual case (memory: and file: checkers answer at once).
            self._password_checked(checked.result, join)
            checked.addErrback(lambda _: None)
            return
        self._checking = True
        self.transport.pauseProducing()
        checked.addCallback(self._password_checked_later, join)

    def _password_checked_later(self, right: bool, join: Join) -> None:
        self._checking = False
        if self._closing:
            return
        self.transport.resumeProducing()
        self._password_checked(right, join)
        backlog, self._backlog = self._backlog, deque()
        self._handle_frames(backlog)

    def _password_checked(self, right: bool, join: Join) -> None:
        if right:
            self._admit_join(join)
        else:
            refusal = JoinRefused(AUTH_FAILED, "wrong or missing password")
            self._refuse({"UID": join.uid, "UN": join.nickname}, refusal)

    def _admit_join(self, join: Join) -> None:
        if self.member is not None:
            # A second JOIN sent while the first one's password was checked.
            self._refuse(
                {"UID": join.uid, "UN": join.nickname},
                JoinRefused(ALREADY_JOINED, "you have already joined"),
            )
            return
        try:
            self.member = self.factory.join(self, join)
        except JoinRefused as refusal:
            self._refuse({"UID": join.uid, "UN": join.nickname}, refusal)
            return
        self.setTimeout(None)
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
    times members / ``list_interval_members`` in a larger room.
    """

    protocol = ChatProtocol

    def __init__(
        self,
        clock: IReactorTime | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        list_interval: float = DEFAULT_LIST_INTERVAL,
        capacity: int | None = None,
        *,
        max_outbound: int = DEFAULT_MAX_OUTBOUND,
        join_timeout: float | None = DEFAULT_JOIN_TIMEOUT,
        rate: float | None = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        max_connections: int | None = None,
        max_per_address: int | None = DEFAULT_MAX_PER_ADDRESS,
        exempt_loopback: bool = False,
        portal: Portal | None = None,
        close_grace: float = DEFAULT_CLOSE_GRACE,
    ) -> None:
        """``None`` for ``join_timeout``, ``rate`` or a cap turns it off;
        ``portal`` (see ``muca.auth``) turns password checks on."""
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[assignment]
        self.clock = clock
        self.max_frame = max_frame
        self.list_interval = list_interval
        self.list_interval_members = LIST_INTERVAL_MEMBERS
        self.max_outbound = max_outbound
        self.join_timeout = join_timeout
        self.rate = rate
        self.burst = burst
        self.portal = portal
        self.close_grace = close_grace
        self.room = Room(capacity)
        self.counter = ConnectionCounter(
            max_connections, max_per_address, exempt_loopback
        )
        #: Every open connection, joined or not.
        self.connections: set[ChatProtocol] = set()
        self.stopping = False
        self._roster_call: DelayedCall | None = None
        self._last_roster = float("-inf")
        #: Fan-out waiting for the end of this reactor turn.
        self.outbox = Outbox(self.clock)

    # Connections

    def admit(self, connection: ChatProtocol) -> str | None:
        """Count a new connection in, or say why it is refused."""
        if self.stopping:
            return "the server is shutting down"
        return self.counter.admit(connection.address)

    def release(self, connection: ChatProtocol) -> None:
        """Count an admitted connection out."""
        self.counter.release(connection.address)

    def close_all(self, timeout: float = DEFAULT_SHUTDOWN_WAIT) -> Deferred[None]:
        """Close every connection; fire once all are gone.

        What is buffered gets ``timeout`` seconds to go out, then the
        remaining connections are dropped. No roster updates go out meanwhile.
        """
        self.stopping = True
        self._cancel_roster()
        self.flush_output()
        closing = list(self.connections)
        log.info("closing {count} connections", count=len(closing))
        if not closing:
            return succeed(None)
        done: Deferred[None] = Deferred()
        for connection in closing:
            connection.close(grace=timeout)
        self._check_closed(done, self.clock.seconds() + timeout + 1.0)
        return done

    def _check_closed(self, done: Deferred[None], deadline: float) -> None:
        if not self.connections or self.clock.seconds() > deadline:
            done.callback(None)
        else:
            self.clock.callLater(0.01, self._check_closed, done, deadline)

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
        pending = self.room.is_pending_join
        if self._roster_call is not None and (
            pending(sender) or any(pending(m) for m in route.recipients)
        ):
            # Recipients should know a sender's nickname before its first
            # words, and a newcomer should have its list before any message.
            self._roster_call.cancel()
            self._send_roster()
        if route.recipients:
            to = [m.uid for m in route.recipients] if route.kind == GROUP else None
            payload = Payload(
                messages.message_payload(
                    route.kind, send.text, sender.uid, int(time.time() * 1000), to
                )
            )
            self.fan_out(payload, route.recipients)
        if route.unknown:
            names = ", ".join(route.unknown)
            sender.connection.send_error(
                UNKNOWN_RECIPIENT, f"not delivered to unknown user ids: {names}", "SEND"
            )

    # Roster updates

    def _schedule_roster(self) -> None:
        if self._roster_call is None and not self.stopping:
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
            self.fan_out(Payload(update.full_list), update.list_recipients)
        if update.delta is not None:
            self.fan_out(Payload(update.delta), update.delta_recipients)
        # A timer's turn: nothing to coalesce with, and no reason to wait.
        self.flush_output()

    def _cancel_roster(self) -> None:
        if self._roster_call is not None and self._roster_call.active():
            self._roster_call.cancel()
        self._roster_call = None

    def stopFactory(self) -> None:
        self._cancel_roster()
        self.flush_output()

    # Output

    def fan_out(self, payload: Payload, members: Iterable[Member]) -> None:
        """Queue the same encoded bytes for every member, written at the end
        of this reactor turn (see :class:`muca.output.Outbox`)."""
        self.outbox.add(payload, [member.connection for member in members])

    def flush_output(self) -> None:
        """Write all queued fan-out now."""
        self.outbox.flush()


# TCP keepalive probes: first after a minute of silence, then every 10 s; a
# peer that answers none of 6 is gone (the kernel's default waits 2 hours).
_KEEPALIVE = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6))


def _detect_dead_peers_sooner(sock: socket.socket) -> None:
    """Shorten the keepalive timers, so a half-open connection (a peer
    whose machine vanished) leaves the room within about two minutes."""
    for name, value in _KEEPALIVE:
        option = getattr(socket, name, None)
        if option is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
            except OSError:
                return


def _describe(address: Any) -> str:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"{host}:{port}"
    name = getattr(address, "name", None)
    return str(name) if name else "local"
