"""The MUCA client: a protocol, its factory, and a small API for scripts and the GUI.

:class:`ChatClient` connects (giving up after a time limit), joins, sends and
leaves; everything the server says arrives as calls on a
:class:`ChatObserver`. It accepts both framings on input (so it works against
the original MUCA server too) and sends native framing with ``"V": 2``.
Nothing here knows Tk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer, endpoints, error, ssl
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure

from muca.protocol import messages
from muca.protocol.messages import (
    Ack,
    JoinRefused,
    Message,
    Peer,
    PeerList,
    Presence,
    ProtocolError,
    ServerError,
)
from muca.protocol.wire import (
    DEFAULT_MAX_FRAME,
    BadFrame,
    FrameDecoder,
    FrameTooLong,
    Framing,
    encode,
)

DEFAULT_TIMEOUT = 2.0


class ClientError(Exception):
    """A client operation that cannot be done; ``str()`` is a readable line."""


class NotConnected(ClientError):
    """An operation that needs a connection (or a joined session) without one."""


class ConnectFailed(ClientError):
    """The server could not be reached, or did not answer, in time."""


class ConnectionClosed(ClientError):
    """The connection closed before the answer that was waited for."""


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A chat message as the observer sees it: ``kind`` is ALL, GROUP or PRIVATE."""

    kind: str
    sender_uid: str
    sender_nickname: str
    text: str
    to: tuple[str, ...] = ()


class ChatObserver:
    """What a :class:`ChatClient` reports; subclass and override what you need."""

    def joined(self) -> None:
        """The server accepted our ``JOIN``."""

    def refused(self, code: str, reason: str) -> None:
        """The server refused our ``JOIN`` with ``ACK FAIL``."""

    def peers_changed(self, peers: tuple[Peer, ...]) -> None:
        """The peer list changed (full ``LIST`` or ``PRESENCE`` delta)."""

    def message_received(self, message: ReceivedMessage) -> None:
        """A chat message arrived."""

    def server_error(self, code: str, reason: str) -> None:
        """The server sent ``ERROR`` (or something this client cannot read)."""

    def connection_lost(self, reason: str, requested: bool) -> None:
        """The connection ended; ``requested`` when we asked for it (leave)."""


class ChatClientProtocol(Protocol):
    """One connection to a MUCA server: frames in, commands to the client."""

    factory: ChatClientFactory

    def __init__(self, client: ChatClient, max_frame: int) -> None:
        self.client = client
        self._decoder = FrameDecoder(max_frame)

    def connectionMade(self) -> None:
        self.client._connection_made(self)

    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except FrameTooLong as too_long:
            self.client._report_error(too_long.code, f"server sent a {too_long.reason}")
            self.transport.loseConnection()
            return
        for frame in frames:
            if isinstance(frame, BadFrame):
                self.client._report_error(frame.code, f"server sent {frame.reason}")
                continue
            try:
                command = messages.parse_server_command(frame)
            except ProtocolError as error:
                self.client._report_error(error.code, f"server sent {error.reason}")
                continue
            if command is not None:
                self.client._handle(command)

    def connectionLost(self, reason: Failure = None) -> None:
        self.client._connection_lost(self, reason)

    def send_object(self, obj: dict[str, Any]) -> None:
        """Write one object in native framing."""
        self.transport.write(encode(obj, Framing.NATIVE))


class ChatClientFactory(ClientFactory):
    """Builds the protocol for one :class:`ChatClient` connection."""

    protocol = ChatClientProtocol

    def __init__(self, client: ChatClient, max_frame: int) -> None:
        self.client = client
        self.max_frame = max_frame

    def buildProtocol(self, addr: Any) -> ChatClientProtocol:
        proto = ChatClientProtocol(self.client, self.max_frame)
        proto.factory = self
        return proto


def client_endpoint(
    reactor: Any,
    host: str,
    port: int,
    tls: bool = False,
    ca_file: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> IStreamClientEndpoint:
    """An endpoint to a server; with ``tls`` the server's certificate is verified
    against ``ca_file`` (a PEM CA certificate) or the platform's trust store.

    Raises :class:`ClientError` when ``ca_file`` cannot be read or used."""
    tcp = endpoints.HostnameEndpoint(reactor, host, port, timeout=timeout)
    if not tls:
        return tcp
    trust = None
    if ca_file is not None:
        try:
            with open(ca_file, "rb") as pem:
                trust = ssl.Certificate.loadPEM(pem.read())
        except OSError as problem:
            raise ClientError(
                f"cannot read CA file {ca_file}: {problem.strerror}"
            ) from None
        except Exception:
            raise ClientError(f"CA file {ca_file} is not a PEM certificate") from None
    options = ssl.optionsForClientTLS(host, trustRoot=trust)
    return endpoints.wrapClientTLS(options, tcp)


class ChatClient:
    """One user's session with a MUCA server.

    ``connect``, ``join`` and ``leave`` return Deferreds; ``send`` writes at
    once. :attr:`peers` is the current peer list, in join order. Events go to
    ``observer`` (a :class:`ChatObserver`). Every wait for the server is
    limited to ``timeout`` seconds.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        nickname: str,
        uid: str,
        observer: ChatObserver | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.reactor = reactor
        self.nickname = nickname
        self.uid = uid
        self.observer = observer if observer is not None else ChatObserver()
        self.timeout = timeout
        self.max_frame = max_frame
        self.peers: tuple[Peer, ...] = ()
        self.joined = False
        self._protocol: ChatClientProtocol | None = None
        self._connecting: defer.Deferred[Any] | None = None
        self._join_waiter: defer.Deferred[None] | None = None
        self._leave_waiters: list[defer.Deferred[None]] = []
        self._leaving = False
        self._where = "the server"

    @property
    def connected(self) -> bool:
        """True while a connection to the server is open."""
        return self._protocol is not None

    # Connecting

    def connect(
        self, endpoint: IStreamClientEndpoint, where: str = "the server"
    ) -> defer.Deferred[None]:
        """Connect; fails with :class:`ConnectFailed` when the server cannot be
        reached within the time limit. ``where`` names the server in errors."""
        if self._protocol is not None or self._connecting is not None:
            return defer.fail(ClientError("already connected"))
        self._where = where
        attempt = endpoint.connect(ChatClientFactory(self, self.max_frame))
        self._connecting = attempt
        attempt.addTimeout(self.timeout, self.reactor)

        def connected(proto: ChatClientProtocol) -> None:
            self._connecting = None

        def failed(failure: Failure) -> None:
            self._connecting = None
            if failure.check(defer.TimeoutError, defer.CancelledError):
                raise ConnectFailed(
                    f"cannot reach {where}: no answer within {self.timeout:g} s"
                )
            raise ConnectFailed(f"cannot reach {where}: {_describe(failure)}")

        attempt.addCallbacks(connected, failed)
        return attempt

    def connect_tcp(
        self, host: str, port: int, tls: bool = False, ca_file: str | None = None
    ) -> defer.Deferred[None]:
        """Connect to ``host:port``, over TLS when ``tls`` (see
        :func:`client_endpoint`)."""
        try:
            endpoint = client_endpoint(
                self.reactor, host, port, tls, ca_file, self.timeout
            )
        except ClientError as problem:
            return defer.fail(problem)
        return self.connect(endpoint, f"{host}:{port}")

    # Joining, sending, leaving

    def join(self, password: str | None = None) -> defer.Deferred[None]:
        """Send ``JOIN``; fires on ``ACK OKAY``, fails with :class:`JoinRefused`
        (the server's code and reason) on ``ACK FAIL``, with
        :class:`ConnectFailed` when no answer comes in time."""
        proto = self._protocol
        if proto is None:
            return defer.fail(NotConnected("not connected"))
        if self.joined or self._join_waiter is not None:
            return defer.fail(ClientError("already joined"))
        waiter: defer.Deferred[None] = defer.Deferred()
        self._join_waiter = waiter

        def timed_out(failure: Failure) -> Failure:
            if failure.check(defer.TimeoutError):
                if self._join_waiter is waiter:
                    self._join_waiter = None
                self._close()
                raise ConnectFailed(
                    f"{self._where} did not answer JOIN within {self.timeout:g} s"
                )
            return failure

        waiter.addTimeout(self.timeout, self.reactor)
        waiter.addErrback(timed_out)
        proto.send_object(messages.join_payload(self.nickname, self.uid, password))
        return waiter

    def send(self, recipients: Sequence[str], text: str) -> None:
        """Send a message to these user ids; no ids is a broadcast.

        Raises :class:`NotConnected` before a successful join.
        """
        if self._protocol is None or not self.joined:
            raise NotConnected("join the chat room before sending")
        self._protocol.send_object(
            messages.send_payload(text, list(recipients), self.uid)
        )

    def leave(self) -> defer.Deferred[None]:
        """Close the connection; fires once it is closed (at once if none)."""
        if self._connecting is not None:
            self._connecting.cancel()
        if self._protocol is None:
            return defer.succeed(None)
        done: defer.Deferred[None] = defer.Deferred()
        self._leave_waiters.append(done)
        self._leaving = True
        self._close()
        return done

    def nickname_of(self, uid: str) -> str:
        """The nickname of a user id in the peer list, else the id itself."""
        for peer in self.peers:
            if peer.uid == uid:
                return peer.nickname
        return uid

    # Called by the protocol

    def _connection_made(self, proto: ChatClientProtocol) -> None:
        self._protocol = proto
        self._leaving = False
        if hasattr(proto.transport, "setTcpNoDelay"):
            proto.transport.setTcpNoDelay(True)

    def _handle(self, command: messages.ServerCommand) -> None:
        if isinstance(command, Message):
            self.observer.message_received(
                ReceivedMessage(
                    kind=command.kind,
                    sender_uid=command.sender,
                    sender_nickname=self.nickname_of(command.sender),
                    text=command.text,
                    to=command.to,
                )
            )
        elif isinstance(command, PeerList):
            self._set_peers(command.peers)
        elif isinstance(command, Presence):
            left = set(command.left)
            kept = [p for p in self.peers if p.uid not in left]
            known = {p.uid for p in kept}
            kept.extend(p for p in command.joined if p.uid not in known)
            self._set_peers(tuple(kept))
        elif isinstance(command, Ack):
            self._acked(command)
        elif isinstance(command, ServerError):
            self.observer.server_error(command.code, command.reason)

    def _acked(self, ack: Ack) -> None:
        waiter, self._join_waiter = self._join_waiter, None
        if ack.ok:
            self.joined = True
            self.observer.joined()
            if waiter is not None:
                waiter.callback(None)
            return
        code = ack.code or "FAIL"
        reason = ack.reason or "the server refused to let you join"
        self.observer.refused(code, reason)
        if waiter is not None:
            waiter.errback(JoinRefused(code, reason))

    def _set_peers(self, peers: tuple[Peer, ...]) -> None:
        self.peers = peers
        self.observer.peers_changed(peers)

    def _report_error(self, code: str, reason: str) -> None:
        self.observer.server_error(code, reason)

    def _close(self) -> None:
        if self._protocol is not None:
            self._protocol.transport.loseConnection()

    def _connection_lost(self, proto: ChatClientProtocol, reason: Failure) -> None:
        if proto is not self._protocol:
            return
        requested = self._leaving
        self._protocol = None
        self._leaving = False
        self.joined = False
        had_peers = bool(self.peers)
        self.peers = ()
        text = "connection closed" if requested else _describe(reason)
        waiter, self._join_waiter = self._join_waiter, None
        if waiter is not None:
            waiter.errback(
                ConnectionClosed(f"connection closed before JOIN was answered: {text}")
            )
        if had_peers:
            self.observer.peers_changed(())
        self.observer.connection_lost(text, requested)
        waiters, self._leave_waiters = self._leave_waiters, []
        for done in waiters:
            done.callback(None)


def _describe(failure: Failure | None) -> str:
    """A short readable reason from a failure."""
    if failure is None or failure.check(error.ConnectionDone):
        return "the server closed the connection"
    if failure.check(error.ConnectionLost):
        return "the connection to the server was lost"
    if failure.check(error.ConnectionRefusedError):
        return "connection refused"
    if failure.check(SSL.Error):
        # pyOpenSSL gives a list of (library, function, reason); the last
        # reason is the one a person can act on.
        details = failure.value.args[0] if failure.value.args else []
        reasons = [d[-1] for d in details if isinstance(d, tuple) and d]
        return f"TLS failed: {reasons[-1] if reasons else failure.value}"
    text = str(failure.value).strip().rstrip(".")
    return text or type(failure.value).__name__
