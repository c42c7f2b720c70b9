"""One client connection of the MUCA server: a wire adapter onto the
session layer (``muca.session``).

:class:`ChatConnection` is what every front-end shares: the
:class:`~muca.session.interfaces.IChatClient` the node and the session
write to, the frames waiting for the rate limit or a login (its mixin
``muca.server.pacing``), the join timeout, the refused-join log, closing
and shutdown, and (its mixin ``muca.server.backpressure``) a slow reader's
output. :class:`ChatProtocol`
is the TCP front-end (every framing: original, newline, length-prefixed);
``muca.web.peer.WebSocketPeer`` is the WebSocket one. Frames in become
calls on the :class:`~muca.session.user.ChatUser` a login hands back;
what the session and the node say becomes frames out.
"""

from __future__ import annotations

import enum
import socket
import typing
from collections import Counter
from collections.abc import Hashable
from typing import Any

from twisted.internet import interfaces
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from muca.protocol import messages
from muca.protocol.messages import (
    ALREADY_JOINED,
    BAD_COMMAND,
    NOT_JOINED,
    REGISTRATION_CLOSED,
    SERVER_FULL,
    SERVER_SHUTDOWN,
    ChatMessage,
    History,
    Join,
    JoinRefused,
    PasswordChange,
    ProtocolError,
    Register,
    Search,
)
from muca.protocol.wire import BadFrame, FrameDecoder, FrameTooLong, Framing
from muca.server.addresses import describe_address
from muca.server.backpressure import SlowReaderOutput
from muca.server.context import NodeConfig
from muca.server.counters import Counters
from muca.server.limits import OutboundTotal
from muca.server.output import Outbox, Payload, plain_socket, transport_idle
from muca.server.pacing import PacedInput
from muca.server.room import Member
from muca.server.wrong_port import BrowserClient, http_reply, is_http_request
from muca.session.interfaces import IChatClient, IChatUser
from muca.session.realm import Entrance, connection_key
from muca.session.user import not_joined

# Seconds a connection over a cap may take to send its JOIN (or anything)
# and be told the server is full.
REFUSED_WAIT = 5.0
# Seconds between two log lines about one connection's refused joins: the
# first is logged, the next ones counted and summed up at most this often
# and when the connection closes.
REFUSAL_LOG_INTERVAL = 60.0
# What a frame read but not handled is told when the server stops.
SHUTDOWN_REASON = "the server is shutting down: not delivered"

#: Bytes held meanwhile past which they are written at once.
HOLD_MAX = 64 * 1024

log = Logger()


class Phase(enum.IntEnum):
    """Where a connection is in its life; the later ones read nothing."""

    #: Over a cap: its first frame is answered ``SERVER_FULL``, then closed.
    REFUSED = 0
    #: Not joined (yet, or its joins were refused).
    CONNECTED = 1
    #: A ``JOIN``'s login or join is under way: the next frames wait.
    LOGGING_IN = 2
    JOINED = 3
    #: Reads nothing more; its last answers are being written.
    STOPPING = 4
    #: Closed after what is written; cut off after the grace period.
    CLOSING = 5
    #: The connection is gone.
    CLOSED = 6


class Control:
    """A frame of the transport's own (a WebSocket ping or pong): it waits
    for its rate-limit token like any frame, and its ``answer`` (a pong),
    if any, is then written as this connection's output."""

    __slots__ = ("answer",)

    def __init__(self, answer: bytes = b"") -> None:
        self.answer = answer


class Node(typing.Protocol):
    """What a connection needs of the node it belongs to (the session's
    calls are ``muca.session.user.Node``)."""

    clock: Any
    #: Limits and timeouts (max_frame, rate, join_timeout, close_grace,
    #: ack_alone...).
    config: NodeConfig
    #: Bytes waiting for all connections together (--max-outbound-total).
    outbound: OutboundTotal
    #: Logins: the session portal, then the throttle.
    entrance: Entrance
    #: The accounts (``--auth db``: REGISTER, PASSWORD), or None.
    accounts: Any
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


@implementer(IChatClient, interfaces.IPushProducer)
class ChatConnection(SlowReaderOutput, PacedInput, TimeoutMixin):
    """What every front-end's connection shares (see the module's text).

    It is the push producer of its byte stream: paused past the stream's
    buffer threshold and resumed once drained; bytes written while paused
    are counted, and past the factory's ``max_outbound`` the peer is a slow
    consumer and is disconnected.

    A front-end provides the wire: :meth:`_register` and :meth:`_unregister`
    (the producer), :meth:`_lose` (close after what is buffered), calls
    :meth:`_start` with its byte stream once connected, hands decoded
    frames to :meth:`frames_received`, and calls :meth:`connectionLost`.
    """

    factory: Node

    def accepted(self, message: ChatMessage) -> None:
        """One of this user's own messages was accepted and has its id (the
        node delivering it calls this on the sender's connection): MUCA
        clients learn nothing from it; IRC's ``echo-message`` echoes it."""

    def __init__(self) -> None:
        self.phase = Phase.CONNECTED
        self.framing: Framing | None = None
        self.peer = "?"
        self.address: str | None = None
        #: The session, once a login has handed one back, and its logout.
        self.user: IChatUser | None = None
        self._logout: Any = None
        #: The JOIN being logged in (phase LOGGING_IN), and the Deferred of
        #: its login while no user is handed back yet.
        self._joining: Join | None = None
        self._login: Deferred[Any] | None = None
        #: A REGISTER or PASSWORD being answered: the next frames wait.
        self._account_call: Deferred[Any] | None = None
        #: Counted in by the node (or, on a WebSocket, by the web listener's
        #: HTTP connection under it); released when the connection closes.
        self.admitted = False
        # Frames read wait for their rate-limit token or a login (pacing).
        self._init_pacing()
        # Refused joins counted since the last log line about them.
        self._refusals: Counter[str] = Counter()
        self._refusal_logged: float | None = None
        self._abort_call: IDelayedCall | None = None
        # The socket under a plain TCP stream, for write_now's fast path.
        self._socket: Any = None
        # The byte stream this connection writes to and reads from.
        self._stream: Any = None
        # Why the server cannot take this connection (phase REFUSED).
        self._refusal: str | None = None
        # Output held back for a moment after an original client's ACK (see
        # _hold_after_ack), and the call that releases it.
        self._held: list[bytes] | None = None
        self._held_bytes = 0
        self._release_call: IDelayedCall | None = None
        # Who waits for the connection to be gone (the node's close_all).
        self._closed_waiters: list[Deferred[None]] | None = None
        self._init_output()

    @property
    def member(self) -> Member | None:
        """The room's member this connection joined as, if it has."""
        return None if self.user is None else self.user.member

    @property
    def _closing(self) -> bool:
        return self.phase >= Phase.STOPPING

    @property
    def _logging_in(self) -> bool:
        return self.phase is Phase.LOGGING_IN or self._account_call is not None

    @property
    def _close_started(self) -> bool:
        return self.phase >= Phase.CLOSING

    def _stop(self) -> None:
        """Read nothing more (the output's own signal, or a slow consumer)."""
        if self.phase < Phase.STOPPING:
            self.phase = Phase.STOPPING

    # The wire, as each front-end provides it

    def _register(self) -> None:
        """Register as the producer of the byte stream."""
        raise NotImplementedError

    def _unregister(self) -> None:
        """Unregister as its producer (it would hold the stream open)."""
        raise NotImplementedError

    def _lose(self) -> None:
        """Close after what is buffered has been sent."""
        raise NotImplementedError

    def _decide_framing(self) -> None:
        """Fix the output framing once the input has shown it (a stream's)."""

    # The connection's life

    def _start(self, stream: Any) -> None:
        """Connected over ``stream`` (the byte transport): count in, or
        remember why not, and start the join timeout."""
        factory = self.factory
        self._stream = stream
        peer = stream.getPeer()
        self.peer = describe_address(peer)
        self.address = getattr(peer, "host", None)
        if interfaces.ITCPTransport.providedBy(stream):
            # Small messages must not wait for Nagle and delayed ACKs.
            stream.setTcpNoDelay(True)
            stream.setTcpKeepAlive(True)
        self._socket = plain_socket(stream)
        if self._socket is not None:
            _detect_dead_peers_sooner(self._socket)
        self._register()
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
            self.phase = Phase.REFUSED
            self._refusal = refusal
            self.setTimeout(REFUSED_WAIT)
            return
        self.admitted = True
        self._start_rate()
        if factory.config.join_timeout is not None:
            self.setTimeout(factory.config.join_timeout)

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802
        """The connection is gone: its session ends, its counts go."""
        self.phase = Phase.CLOSED
        self.setTimeout(None)
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        self._cancel_rate()
        if self._release_call is not None and self._release_call.active():
            self._release_call.cancel()
        self._release_call = None
        self._held = None
        self._waiting.clear()
        self._drop_output()
        factory = self.factory
        factory.entrance.forget(self)
        self._log_refusals()
        factory.connections.discard(self)
        if self.admitted:
            self.admitted = False
            factory.release(self)
        self._end_session()
        call, self._account_call = self._account_call, None
        if call is not None:
            # Its hash or its delay is left to finish unheard.
            call.cancel()
        waiters, self._closed_waiters = self._closed_waiters, None
        for waiter in waiters or ():
            waiter.callback(None)

    def when_closed(self) -> Deferred[None]:
        """A Deferred that fires once the connection is gone (at once when
        it is)."""
        if self.phase is Phase.CLOSED:
            return succeed(None)
        if self._closed_waiters is None:
            self._closed_waiters = []
        waiter: Deferred[None] = Deferred()
        self._closed_waiters.append(waiter)
        return waiter

    def _end_session(self) -> None:
        """Out of the room now; a login under way is given up."""
        login, self._login = self._login, None
        self._joining = None
        logout, self._logout = self._logout, None
        self.user = None
        if logout is not None:
            # A join the node still decides is left again once decided.
            logout()
        elif login is not None:
            # Its login delay's timer, or the wait for a password checker.
            login.cancel()

    def timeoutConnection(self) -> None:  # noqa: N802
        """No JOIN in time, or a refused connection that said nothing."""
        if self.phase is Phase.REFUSED:
            self._decide_framing()
            self.send_error(SERVER_FULL, self._refusal or "")
            self.close()
            return
        log.info(
            "closing {peer}: no JOIN within {timeout} s",
            peer=self.peer,
            timeout=self.factory.config.join_timeout,
        )
        self.close()

    def callLater(self, period: float, func: Any) -> IDelayedCall:  # noqa: N802
        """TimeoutMixin's timer, on the factory's clock."""
        return self.factory.clock.callLater(period, func)

    def close(self, grace: float | None = None) -> None:
        """Close after what is written has been sent; ignore further input.

        A peer that does not read what is left within ``grace`` seconds (the
        factory's ``close_grace`` by default) is cut off, so that a
        connection being closed cannot hold its buffer and socket forever.
        """
        if self._close_started:
            return
        self.phase = Phase.CLOSING
        self.setTimeout(None)
        if self._behind is not None:
            # What waited behind a stream goes out before the close.
            self._sources.clear()
            self._release_behind()
        if self._held is not None:
            # What was held goes out before the close.
            self._release_held()
        # Out of the room now: nothing more is queued for a connection on
        # its way out, and the others hear of it at once.
        self._end_session()
        # A registered producer would keep the stream open after the flush.
        self._unregister()
        self._lose()
        if grace is None:
            grace = self.factory.config.close_grace
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
        pending = self.phase is Phase.LOGGING_IN
        self._stop()
        self._cancel_rate()
        self._decide_framing()
        answers: list[dict[str, Any]] = []
        if pending:
            # Its login's answer, when it comes, changes nothing.
            self._end_session()
            answers.append(messages.ack_fail_payload(SERVER_SHUTDOWN, SHUTDOWN_REASON))
        for frame in self._waiting:
            command = frame.get("CMD") if isinstance(frame, dict) else None
            if command == "JOIN":
                answers.append(
                    messages.ack_fail_payload(SERVER_SHUTDOWN, SHUTDOWN_REASON)
                )
            elif command in ("SEND", "HISTORY", "SEARCH"):
                answers.append(
                    messages.error_payload(SERVER_SHUTDOWN, SHUTDOWN_REASON, command)
                )
        self._waiting.clear()
        if answers:
            self.send_many(answers)
        self.close(grace)

    def abort(self) -> None:
        """Drop the connection now, and whatever is still buffered for it."""
        self._stop()
        self._abort_call = None
        self._stream.abortConnection()

    # IChatClient: what the session and the node say, as frames

    def welcome(self, join: Join) -> None:
        """The join is accepted: ``ACK`` (and, for an original client, what
        follows it held back a moment)."""
        if self._closing:
            return
        self.phase = Phase.JOINED
        self._joining = None
        self.setTimeout(None)
        # MAX_FRAME for clients of the extensions; an original client's
        # stream stays byte for byte what it expects.
        factory = self.factory
        max_frame = factory.config.max_frame if join.version >= 2 else None
        self.send(messages.ack_okay_payload(max_frame))
        if self.framing is Framing.ORIGINAL and factory.config.ack_alone > 0:
            self._hold_after_ack()

    def refuse(self, uid: str, nickname: str, refusal: JoinRefused) -> None:
        """A join is refused: ``ACK FAIL``, logged (the first of a run of
        them; the next ones counted, so a repeated JOIN cannot fill the log)."""
        if self._closing:
            return
        if self.phase is Phase.LOGGING_IN:
            # Not joined: the login's session, if any, ends.
            self.phase = Phase.CONNECTED
            self._end_session()
        now = self.factory.clock.seconds()
        last = self._refusal_logged
        if last is None or now - last >= REFUSAL_LOG_INTERVAL:
            self._log_refusals()
            self._refusal_logged = now
            log.info(
                "refused join of {uid!r} ({nickname!r}) from {peer}: {code} {reason}",
                uid=uid,
                nickname=nickname,
                peer=self.peer,
                code=refusal.code,
                reason=refusal.reason,
            )
        else:
            self._refusals[refusal.code] += 1
        self.send(messages.ack_fail_payload(refusal.code, refusal.reason))

    def send(self, obj: dict[str, Any]) -> None:
        """Encode and write one object to this connection only (a reply)."""
        outbox = self.factory.outbox
        if outbox:
            # Behind what this turn's fan-out queued for us, not ahead of it.
            outbox.flush_one(self)
        self.write_now(Payload(obj).for_framing(self.framing))

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

    def send_error(self, code: str, reason: str, ref: str | None = None) -> None:
        """Write an ``ERROR``."""
        self.send(messages.error_payload(code, reason, ref))

    def write_now(self, data: bytes) -> None:
        """Write bytes straight to the socket when nothing is queued ahead.

        One ``send`` instead of the transport's buffering, ``epoll_ctl`` to
        watch for writability, a writable event, ``send`` and ``epoll_ctl``
        again; what the kernel does not take goes to :meth:`write_bytes`
        (16-23 % less server CPU per delivery, measured in
        :func:`muca.server.output.plain_socket`).
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

    # Frames and commands

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
        if self.phase is Phase.REFUSED:
            if isinstance(frame, dict) and frame.get("CMD") == "JOIN":
                self.send(messages.ack_fail_payload(SERVER_FULL, self._refusal or ""))
            else:
                self.send_error(SERVER_FULL, self._refusal or "")
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

    def _handle(self, obj: dict[str, Any]) -> None:
        """One command object: a call on the session."""
        if obj.get("CMD") == "JOIN" and self.phase is Phase.JOINED:
            refusal = JoinRefused(ALREADY_JOINED, "you have already joined")
            self.refuse(obj.get("UID"), obj.get("UN"), refusal)  # type: ignore[arg-type]
            return
        member = self.member
        try:
            command = messages.parse_client_command(
                obj,
                rooms=member is not None and member.rooms,
                moderation=member is not None and member.moderation,
            )
        except JoinRefused as refusal:
            self.refuse(obj.get("UID"), obj.get("UN"), refusal)  # type: ignore[arg-type]
            return
        except ProtocolError as error:
            self.send_error(error.code, error.reason, error.ref)
            return
        user = self.user
        if isinstance(command, Join):
            self._join(command)
        elif isinstance(command, Register | PasswordChange):
            self._account(command)
        elif user is None:
            if isinstance(command, History):
                not_joined(self, "HISTORY")
            else:
                not_joined(self, "SEARCH" if isinstance(command, Search) else "SEND")
        elif isinstance(command, History):
            user.history(command)
        elif isinstance(command, Search):
            user.search(command)
        elif isinstance(command, messages.Send):
            user.send(command)
        elif isinstance(command, messages.Moderate | messages.Delete | messages.Report):
            user.moderate(command)
        else:
            user.rooms(command)

    def _join(self, join: Join) -> None:
        """Log in as the ``JOIN`` says, then join: the frames after it wait
        until the session has welcomed or refused it."""
        # A version 2 JOIN makes a stream's output native; the framings of
        # a transport that delimits messages itself stay.
        if join.version >= 2 and self.framing not in _SELF_DELIMITED:
            self.framing = Framing.NATIVE
        self.phase = Phase.LOGGING_IN
        self._joining = join
        login = self.factory.entrance.log_in(self, join)
        login.addCallback(self._logged_in, join)
        login.addErrback(self._login_broke, join)
        if self.phase is Phase.LOGGING_IN:
            # Not decided yet (a login delay, a password checker, a cluster).
            if self.user is None:
                self._login = login
            login.addBoth(self._decided)

    def _account(self, command: Register | PasswordChange) -> None:
        """``REGISTER`` (before joining) or ``PASSWORD`` (joined): asked of
        the accounts; the frames after it wait for the answer."""
        accounts = self.factory.accounts
        register = isinstance(command, Register)
        ref = "REGISTER" if register else "PASSWORD"
        if accounts is None:
            self.send_error(
                REGISTRATION_CLOSED if register else BAD_COMMAND,
                "this server keeps no accounts (it runs without --auth db)",
                ref,
            )
            return
        if isinstance(command, Register):
            if self.user is not None or self.phase is not Phase.CONNECTED:
                self.send_error(ALREADY_JOINED, "REGISTER comes before JOIN", ref)
                return
            call = accounts.register(
                command.uid,
                command.password,
                command.invitation,
                Entrance.keys(self, None),
            )
        else:
            user = self.user
            if user is None:
                self.send_error(NOT_JOINED, "join with your password first", ref)
                return
            call = accounts.change_password(
                user.uid, command.old, command.new, Entrance.keys(self, user.uid)
            )
        if call.called:
            call.addCallback(self.send)
            return
        self._account_call = call
        call.addCallbacks(self._account_answered, self._account_gone)

    def _account_answered(self, answer: dict[str, Any]) -> None:
        self._account_call = None
        if not self._closing:
            self.send(answer)
        self._handle_waiting()

    def _account_gone(self, failure: Failure) -> None:
        failure.trap(CancelledError)

    def _logged_in(self, login: tuple[IChatUser, Any] | None, join: Join) -> Any:
        self._login = None
        if login is None:
            return None  # refused: the client has been told
        user, logout = login
        if self._closing or self._joining is not join:
            logout()  # the connection went meanwhile
            return None
        self.user, self._logout = user, logout
        return user.join(join)

    def _login_broke(self, failure: Failure, join: Join) -> None:
        log.failure(
            "join of {uid!r} from {peer}", failure, uid=join.uid, peer=self.peer
        )
        if self.phase is Phase.LOGGING_IN:
            self.refuse(
                join.uid,
                join.nickname,
                JoinRefused(SERVER_FULL, "the server could not take the join"),
            )

    def _decided(self, _: object) -> None:
        """The login and join decided later than asked: go on reading."""
        self._login = None
        self._handle_waiting()

    @property
    def _connection_key(self) -> Hashable:
        return connection_key(self)

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
            factory.config.ack_alone, self._release_held
        )

    def _release_held(self) -> None:
        """Write what was held after the ``ACK``, in order, and stop holding."""
        if self._release_call is not None and self._release_call.active():
            self._release_call.cancel()
        self._release_call = None
        held, self._held = self._held, None
        if held:
            self.write_now(b"".join(held))

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


class ChatProtocol(ChatConnection, Protocol):
    """The TCP front-end: a byte stream in any of the framings, decoded and
    answered in the framing it shows (see :meth:`_decide_framing`); an HTTP
    request on it is pointed to the browser client."""

    def __init__(self) -> None:
        super().__init__()
        self._decoder: FrameDecoder | None = None
        # Whether any byte has come: the first ones may be an HTTP request.
        self._received = False

    def connectionMade(self) -> None:  # noqa: N802
        self._decoder = FrameDecoder(self.factory.config.max_frame)
        self._start(self.transport)

    def _register(self) -> None:
        self.transport.registerProducer(self, True)

    def _unregister(self) -> None:
        self.transport.unregisterProducer()

    def _lose(self) -> None:
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
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


#: Output framings that a JOIN never changes.
_SELF_DELIMITED = (Framing.PREFIXED, Framing.WEBSOCKET, Framing.IRC)

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
