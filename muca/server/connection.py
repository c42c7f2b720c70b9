"""One client connection of the MUCA server: frames in, commands handled,
frames out.

How a client joins: ``ChatProtocol._join`` (password check, then the
node's ``join``, then ``ACK``). Per-connection state (framing, the member it
joined as, its limits), the producer signals of a slow consumer, timeouts
and closing. What is shared by all connections (the room, roster updates,
fan-out) is the node, known here only through the small :class:`Node`
interface (``muca.server.node.ChatFactory`` implements it).
"""

from __future__ import annotations

import socket
import typing
from collections import Counter, deque
from collections.abc import Hashable
from typing import Any

from twisted.internet import interfaces
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from muca.protocol import messages
from muca.protocol.messages import (
    ALREADY_JOINED,
    AUTH_FAILED,
    FROM_MISMATCH,
    NOT_JOINED,
    SERVER_FULL,
    SERVER_SHUTDOWN,
    History,
    Join,
    JoinRefused,
    ProtocolError,
    Send,
)
from muca.protocol.wire import BadFrame, FrameDecoder, FrameTooLong, Framing
from muca.server.auth import check_password
from muca.server.backpressure import SlowReaderOutput
from muca.server.counters import Counters
from muca.server.limits import OutboundTotal, TokenBucket, answer_tokens
from muca.server.logins import LoginThrottle
from muca.server.output import Outbox, Payload, plain_socket, transport_idle
from muca.server.room import Member
from muca.server.wrong_port import BrowserClient, http_reply, is_http_request

# Seconds a connection over a cap may take to send its JOIN (or anything)
# and be told the server is full.
REFUSED_WAIT = 5.0
# Seconds between two log lines about one connection's refused joins: the
# first is logged, the next ones counted and summed up at most this often
# and when the connection closes.
REFUSAL_LOG_INTERVAL = 60.0
# What a frame read but not handled is told when the server stops.
SHUTDOWN_REASON = "the server is shutting down: not delivered"

#: Seconds an original client's output waits after its ``ACK`` by default,
#: so that the ``ACK`` arrives in a read of its own (the node's
#: ``ack_alone``; see ChatProtocol._hold_after_ack).
ACK_ALONE = 0.02
#: Bytes held meanwhile past which they are written at once.
HOLD_MAX = 64 * 1024

log = Logger()


class Control:
    """A frame of the transport's own (a WebSocket ping or pong): it waits
    for its rate-limit token like any frame, and its ``answer`` (a pong),
    if any, is then written as this connection's output."""

    __slots__ = ("answer",)

    def __init__(self, answer: bytes = b"") -> None:
        self.answer = answer


class Node(typing.Protocol):
    """What a connection needs of the node it belongs to."""

    clock: Any
    max_frame: int
    max_outbound: int
    #: Bytes waiting for all connections together (--max-outbound-total).
    outbound: OutboundTotal
    join_timeout: float | None
    rate: float | None
    burst: int
    portal: Any
    logins: LoginThrottle | None
    close_grace: float
    #: Seconds an original client's output is held after its ACK (0: never).
    ack_alone: float
    connections: set[Any]
    #: Where the web listener serves the browser client (None: nowhere).
    browser_client: BrowserClient | None
    outbox: Outbox
    counters: Counters

    def admit(self, connection: Any) -> str | None:
        """Count a new connection in, or say why it is refused."""

    def shed(self) -> None:
        """The bytes waiting for all connections are over their cap: drop
        the connections holding the most until they are not."""

    def release(self, connection: Any) -> None:
        """Count an admitted connection out."""

    def join(self, connection: Any, join: Join) -> Member | Deferred[Member]:
        """Add a connection to the room, at once or later; refusals raise or
        fail with :class:`JoinRefused`."""

    def leave(self, member: Member, peer: str) -> None:
        """Remove a member whose connection has gone."""

    def accept(self, sender: Member, send: Send) -> None:
        """Route and publish one ``SEND``; raises :class:`ProtocolError`."""

    def joined(self, member: Member, join: Join) -> None:
        """The ``ACK`` of this join is written: replay its history if asked."""

    def scroll_back(self, member: Member, request: History) -> None:
        """Answer ``HISTORY BEFORE``."""


@implementer(interfaces.IPushProducer)
class ChatProtocol(SlowReaderOutput, Protocol, TimeoutMixin):
    """One client connection: frames in, commands handled, frames out.

    It is also the push producer registered on its own transport: the
    transport pauses it past its buffer threshold and resumes it once
    drained. Bytes written while paused are counted; past the factory's
    ``max_outbound`` the peer is a slow consumer and is disconnected.
    """

    factory: Node

    def __init__(self) -> None:
        self.member: Member | None = None
        self.framing: Framing | None = None
        self.peer = "?"
        self.address: str | None = None
        self._decoder: FrameDecoder | None = None
        self._closing = False
        # Whether any byte has come: the first ones may be an HTTP request.
        self._received = False
        #: Counted in by the node (or, on a WebSocket, by the web listener's
        #: HTTP connection under it); released when the connection closes.
        self.admitted = False
        self._bucket: TokenBucket | None = None
        # Frames read but not handled yet: they wait for a password check
        # or for the rate limit, while reading from the peer is paused.
        self._waiting: deque[Any] = deque()
        self._checking = False
        # The JOIN whose password check (or its login delay, or a cluster's
        # answer) is under way: it still owes its ACK.
        self._pending_join: Join | None = None
        self._login_call: IDelayedCall | None = None
        # Refused joins counted since the last log line about them.
        self._refusals: Counter[str] = Counter()
        self._refusal_logged: float | None = None
        self._reading_paused = False
        self._rate_call: IDelayedCall | None = None
        self._abort_call: IDelayedCall | None = None
        self._registered = False
        self._close_started = False
        # The socket under a plain TCP transport, for send()'s fast path.
        self._socket: Any = None
        # The byte stream under the transport (see connectionMade).
        self._stream: Any = None
        # Why the server cannot take this connection, when it is over a cap.
        self._refusal: str | None = None
        # Output held back for a moment after an original client's ACK (see
        # _hold_after_ack), and the call that releases it.
        self._held: list[bytes] | None = None
        self._held_bytes = 0
        self._release_call: IDelayedCall | None = None
        self._init_output()

    # Twisted callbacks

    def connectionMade(self) -> None:
        factory = self.factory
        self._decoder = FrameDecoder(factory.max_frame)
        peer = self.transport.getPeer()
        self.peer = _describe(peer)
        self.address = getattr(peer, "host", None)
        # A transport of whole messages (a WebSocket) names the byte stream
        # it runs on: output is framed for it already, so it may take the
        # same socket fast path and TCP options as a TCP peer.
        stream = getattr(self.transport, "stream", self.transport)
        self._stream = stream
        if interfaces.ITCPTransport.providedBy(stream):
            # Small messages must not wait for Nagle and delayed ACKs.
            stream.setTcpNoDelay(True)
            stream.setTcpKeepAlive(True)
        self._socket = plain_socket(stream)
        if self._socket is not None:
            _detect_dead_peers_sooner(self._socket)
        self.transport.registerProducer(self, True)
        self._registered = True
        factory.connections.add(self)
        refusal = None if self.admitted else factory.admit(self)
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
        self.admitted = True
        if factory.rate is not None:
            self._bucket = TokenBucket(factory.rate, factory.burst, factory.clock)
        if factory.join_timeout is not None:
            self.setTimeout(factory.join_timeout)

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if not self._received:
            self._received = True
            if is_http_request(data):
                self._answer_browser()
                return
        assert self._decoder is not None
        try:
            frames = self._decoder.feed(data)
        except FrameTooLong as error:
            frames = [*error.frames, error]
        self.frames_received(frames)

    def _answer_browser(self) -> None:
        """An HTTP request on the chat port: point to the browser client."""
        web = self.factory.browser_client
        here = getattr(self.transport.getHost(), "host", "localhost")
        url = None if web is None else web.url(here)
        log.info("answered an HTTP request from {peer}: {url}", peer=self.peer, url=url)
        self.transport.write(http_reply(url))
        self.close()

    def frames_received(self, frames: list[Any]) -> None:
        """Handle decoded frames (objects, :class:`BadFrame`, or
        :class:`FrameTooLong`), from the byte stream or a message transport."""
        if self._closing:
            return
        self._waiting.extend(frames)
        self._handle_waiting()

    def connectionLost(self, reason: Failure = None) -> None:
        self._closing = True
        self._close_started = True
        self.setTimeout(None)
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        self._cancel_timers()
        if self._release_call is not None and self._release_call.active():
            self._release_call.cancel()
        self._release_call = None
        self._held = None
        self._waiting.clear()
        self._drop_output()
        factory = self.factory
        if factory.logins is not None:
            factory.logins.forget(self._connection_key)
        self._log_refusals()
        factory.connections.discard(self)
        if self.admitted:
            self.admitted = False
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
        Right after an original client's ``ACK`` it is held back a moment
        instead (see :meth:`_hold_after_ack`).
        For ``ACK`` it also matters that it leaves at once: a roster update
        written while the ``ACK`` still waited would make the transport join
        the two into a private copy of the whole ``LIST``, per new member
        (hundreds of MB during a storm of joins). TLS, a paused or closing
        transport, or one with bytes queued, always go through
        :meth:`write_bytes`.
        """
        behind = self._behind
        if behind is not None:
            behind.append(data)
            self._held_out += len(data)
            self._count_waiting(len(data))
            return
        self._write_out(data)

    def _write_out(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            held.append(data)
            self._held_bytes += len(data)
            if self._held_bytes > HOLD_MAX:
                self._release_held()
            return
        self.factory.counters.bytes_out += len(data)
        sock = self._socket
        if sock is None or self._paused or not transport_idle(self._stream):
            self.write_bytes(data)
            return
        try:
            sent = sock.send(data)
        except OSError:
            # Full or broken: the transport buffers it, or reports the loss.
            sent = 0
        if sent < len(data):
            self.write_bytes(data[sent:])

    def send_many(self, objs: list[dict[str, Any]]) -> int:
        """Write several objects to this connection only, in one write;
        return how many bytes that was."""
        outbox = self.factory.outbox
        if outbox:
            outbox.flush_one(self)
        framing = self.framing
        data = b"".join(Payload(obj).for_framing(framing) for obj in objs)
        self.write_now(data)
        return len(data)

    def charge_answer(self, size: int) -> None:
        """A request's answer of ``size`` bytes went out: it costs tokens of
        the rate limit by its size (``muca.server.limits.answer_tokens``),
        so the frames read after it wait as after as many frames."""
        if self._bucket is not None:
            self._bucket.charge(answer_tokens(size))

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
        if self._behind is not None:
            # What waited behind a stream goes out before the close.
            self._sources.clear()
            self._release_behind()
        if self._held is not None:
            # What was held goes out before the close.
            self._release_held()
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

    def shutdown(self, grace: float) -> None:
        """The server is stopping: read nothing more, tell the peer what it
        sent that will not be handled, then :meth:`close`.

        Frames read but held (by the rate limit, a login delay or a password
        check) are not handled: each held ``SEND`` or ``HISTORY`` gets
        ``ERROR SERVER_SHUTDOWN`` and each unanswered ``JOIN`` its ``ACK
        FAIL SERVER_SHUTDOWN``, in the order sent; nothing is dropped
        unsaid. (Other held frames, e.g. garbage, get nothing more.)
        """
        if self._close_started:
            return
        self._closing = True
        self._cancel_timers()
        self._decide_framing()
        answers: list[dict[str, Any]] = []
        if self._pending_join is not None:
            # Its check's answer, when it comes, is ignored (_wait_for).
            self._pending_join = None
            answers.append(messages.ack_fail_payload(SERVER_SHUTDOWN, SHUTDOWN_REASON))
        for frame in self._waiting:
            command = frame.get("CMD") if isinstance(frame, dict) else None
            if command == "JOIN":
                answers.append(
                    messages.ack_fail_payload(SERVER_SHUTDOWN, SHUTDOWN_REASON)
                )
            elif command in ("SEND", "HISTORY"):
                answers.append(
                    messages.error_payload(SERVER_SHUTDOWN, SHUTDOWN_REASON, command)
                )
        self._waiting.clear()
        if answers:
            self.send_many(answers)
        self.close(grace)

    def _cancel_timers(self) -> None:
        for call in (self._rate_call, self._login_call):
            if call is not None and call.active():
                call.cancel()
        self._rate_call = None
        self._login_call = None

    def abort(self) -> None:
        """Drop the connection now, and whatever is still buffered for it."""
        self._closing = True
        self._abort_call = None
        self.transport.abortConnection()

    # Frames and commands

    def _handle_waiting(self) -> None:
        """Handle the frames read so far, in order, as far as allowed.

        A frame waits (and reading from the peer is paused, so that what
        waits is at most one read; the kernel's buffers and TCP hold the
        rest back) while a password check or its login delay is under way,
        or while the rate limit has no token for it: then it is handled when
        the bucket has one. Every frame takes a token, a refused one too
        (a flood of ``JOIN`` s is slowed like any other). Nothing read is
        dropped ("fake lag", as IRC servers do).
        """
        waiting = self._waiting
        bucket = self._bucket
        while waiting and not self._closing:
            if self._checking:
                self._pause_reading()
                return
            if bucket is not None and not bucket.take():
                self._pause_reading()
                if self._rate_call is None:
                    self._rate_call = self.factory.clock.callLater(
                        bucket.wait(), self._rate_allows
                    )
                return
            self._handle_frame(waiting.popleft())
        if not self._checking and self._rate_call is None:
            self._resume_reading()

    def _rate_allows(self) -> None:
        """The bucket has a token again: go on with the waiting frames."""
        self._rate_call = None
        self._handle_waiting()

    def _pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()

    def _resume_reading(self) -> None:
        if self._reading_paused and not self._closing:
            self._reading_paused = False
            self.transport.resumeProducing()

    def _handle_frame(self, frame: Any) -> None:
        if isinstance(frame, Control):
            if frame.answer:
                self.write_now(frame.answer)
            return
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
        if isinstance(frame, BadFrame):
            self.send_error(frame.code, frame.reason)
            return
        try:
            self._handle(frame)
        except Exception:
            log.failure("unexpected error handling a frame from {peer}", peer=self.peer)
            self.send_error(messages.BAD_COMMAND, "the server could not handle this")

    def _decide_framing(self) -> None:
        """Fix the output framing once the input has shown it.

        Until then (e.g. garbage with no end yet) replies are native: a
        lone object, with or without a newline after it, is read by every
        kind of peer.
        """
        decoder = self._decoder
        assert decoder is not None
        if self.framing is not None:
            return
        if decoder.length_prefixed:
            self.framing = Framing.PREFIXED
        elif decoder.newline_framed is not None:
            native = decoder.newline_framed
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
        elif isinstance(command, History):
            if self.member is None:
                self.send_error(NOT_JOINED, "join the chat room first", "HISTORY")
            else:
                self.factory.scroll_back(self.member, command)
        else:
            self._send(command)

    def _join(self, join: Join) -> None:
        # A version 2 JOIN makes a stream's output native; the framings of
        # a transport that delimits messages itself stay.
        if join.version >= 2 and self.framing not in _SELF_DELIMITED:
            self.framing = Framing.NATIVE
        factory = self.factory
        if factory.portal is None:
            self._admit_join(join)
            return
        logins = factory.logins
        wait = 0.0 if logins is None else logins.wait(self._login_keys(join.uid))
        if wait > 0:
            # Failed logins before this one, under this connection, user id
            # or address: the password is checked once the delay is over,
            # whether right or wrong (an answer sooner would tell which).
            waited: Deferred[None] = Deferred()
            self._login_call = factory.clock.callLater(wait, self._login_waited, waited)
            self._wait_for(waited, self._check_password, join)
            return
        self._check_password(None, join)

    def _login_waited(self, waited: Deferred[None]) -> None:
        self._login_call = None
        waited.callback(None)

    def _check_password(self, _: object, join: Join) -> None:
        checked = check_password(self.factory.portal, join.uid, join.password)
        if checked.called:
            # The usual case (memory: and file: checkers answer at once).
            self._password_checked(checked.result, join)
            checked.addErrback(lambda _: None)
            return
        self._wait_for(checked, self._password_checked, join)

    @property
    def _connection_key(self) -> Hashable:
        return ("connection", id(self))

    def _login_keys(self, uid: str) -> list[Hashable]:
        """What a login attempt on this connection is counted under."""
        keys: list[Hashable] = [self._connection_key, ("uid", uid)]
        if self.address is not None:
            keys.append(("address", self.address))
        return keys

    def _wait_for(self, d: Deferred[Any], then: Any, join: Join) -> None:
        """The frames after this JOIN wait (in ``_waiting``, see
        :meth:`_handle_waiting`) until ``d`` fires; then ``then(result,
        join)`` runs and the waiting frames go on."""
        self._checking = True
        self._pending_join = join

        def done(result: Any) -> None:
            self._checking = False
            if self._closing:
                if isinstance(result, Member):
                    # Joined while the connection went away: leave again.
                    self.factory.leave(result, self.peer)
                return
            self._pending_join = None
            then(result, join)
            self._handle_waiting()

        d.addBoth(done).addErrback(
            lambda failure: log.failure("handling {peer}", failure, peer=self.peer)
        )

    def _password_checked(self, right: bool | Failure, join: Join) -> None:
        if right is True:
            self._admit_join(join)
        else:
            if self.factory.logins is not None:
                self.factory.logins.failed(self._login_keys(join.uid))
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
            joined = self.factory.join(self, join)
        except JoinRefused as refusal:
            self._refuse({"UID": join.uid, "UN": join.nickname}, refusal)
            return
        if isinstance(joined, Deferred):
            # A cluster asks its shared registry: input waits for the answer.
            self._wait_for(joined, self._joined, join)
        else:
            self._joined(joined, join)

    def _joined(self, joined: Member | Failure, join: Join) -> None:
        if isinstance(joined, Failure):
            refusal = joined.value
            if not isinstance(refusal, JoinRefused):
                log.failure("join of {uid!r}", joined, uid=join.uid)
                refusal = JoinRefused(SERVER_FULL, "the server could not take the join")
            self._refuse({"UID": join.uid, "UN": join.nickname}, refusal)
            return
        self.member = joined
        self.setTimeout(None)
        # MAX_FRAME for clients of the extensions; an original client's
        # stream stays byte for byte what it expects.
        max_frame = self.factory.max_frame if join.version >= 2 else None
        self.send(messages.ack_okay_payload(max_frame))
        if self.framing is Framing.ORIGINAL and self.factory.ack_alone > 0:
            self._hold_after_ack()
        self.factory.joined(self.member, join)

    def _hold_after_ack(self) -> None:
        """Let the ``ACK`` leave alone: what follows it (the ``LIST``) is
        held for the node's ``ack_alone`` seconds, then written in one piece.

        Some original clients take each ``recv()`` as one JSON object and
        lose an ``ACK`` and ``LIST`` read together (no peer list); the
        original server gave them two reads by luck of timing. Only for
        original framing: native clients' output is never held."""
        self._held = []
        self._held_bytes = 0
        factory = self.factory
        self._release_call = factory.clock.callLater(
            factory.ack_alone, self._release_held
        )

    def _release_held(self) -> None:
        """Write what was held after the ``ACK``, in order, and stop holding."""
        if self._release_call is not None and self._release_call.active():
            self._release_call.cancel()
        self._release_call = None
        held, self._held = self._held, None
        if held:
            self.write_now(b"".join(held))

    def _refuse(self, obj: dict[str, Any], refusal: JoinRefused) -> None:
        now = self.factory.clock.seconds()
        last = self._refusal_logged
        if last is None or now - last >= REFUSAL_LOG_INTERVAL:
            # One line now; the next ones from this connection are counted
            # (a client that repeats its JOIN must not fill the log).
            self._log_refusals()
            self._refusal_logged = now
            log.info(
                "refused join of {uid!r} ({nickname!r}) from {peer}: {code} {reason}",
                uid=obj.get("UID"),
                nickname=obj.get("UN"),
                peer=self.peer,
                code=refusal.code,
                reason=refusal.reason,
            )
        else:
            self._refusals[refusal.code] += 1
        self.send(messages.ack_fail_payload(refusal.code, refusal.reason))

    def _log_refusals(self) -> None:
        """Log the refused joins counted since the last line, if any."""
        counted = self._refusals
        if not counted:
            return
        log.info(
            "{count} more refused joins from {peer} (not logged one by one): {codes}",
            count=sum(counted.values()),
            peer=self.peer,
            codes=", ".join(f"{code} × {n}" for code, n in sorted(counted.items())),
        )
        counted.clear()

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
            self.factory.accept(member, send)
        except ProtocolError as error:
            self.send_error(error.code, error.reason, error.ref)


#: Output framings that a JOIN never changes.
_SELF_DELIMITED = (Framing.PREFIXED, Framing.WEBSOCKET)

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
