"""What the server writes, and how it gets to the sockets cheaply.

- :class:`Payload`: one object, encoded at most once per output framing, so
  that a fan-out writes the same bytes to every recipient.
- :class:`EncodedPayload`: one given as its native bytes (a ``ROOMS`` put
  together from pieces encoded once).
- :class:`Outbox`: fan-out queued per connection during one reactor turn and
  written at its end, one write per connection however many messages. An
  IRC connection's bytes (``Framing.IRC``) are its front-end's lines, made
  once per message for every IRC connection with the same ``shared_key``.
- :func:`plain_socket` / :func:`transport_idle`: when a plain TCP transport
  holds nothing, a write can go straight to its socket (see
  ``muca.server.connection.ChatConnection.write_now``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.internet import tcp
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport

from muca.protocol.wire import Framing, encode, websocket_text_frame

# What transport_idle reads of a TCP transport to know that nothing is queued
# (twisted.internet.abstract.FileDescriptor's write buffers). Transports
# without them (TLS, UNIX sockets on other reactors, test transports) always
# take the transport's own write path.
_BUFFER_ATTRIBUTES = ("_tempDataLen", "dataBuffer", "TLS", "disconnecting")


# The framings whose bytes come from the native encoding alone.
_FROM_NATIVE = (None, Framing.NATIVE, Framing.WEBSOCKET, Framing.IRC)

#: Bytes of one turn's fan-out to a connection up to which they are joined
#: into one write; past it each message is written by itself.
JOIN_MAX = 64 * 1024


class Payload:
    """One object to deliver, encoded at most once per output framing."""

    __slots__ = ("obj", "_native", "_others", "shared")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self._native: bytes | None = None
        self._others: dict[Framing, bytes] = {}
        #: What a front-end whose bytes depend on the recipient made of it,
        #: by what they depend on, for every connection alike (IRC's lines,
        #: see ``muca.irc.peer.IrcPeer.render``).
        self.shared: dict[Any, bytes] | None = None

    def native(self) -> bytes:
        """The object in native framing."""
        if self._native is None:
            self._native = encode(self.obj, Framing.NATIVE)
        return self._native

    def for_framing(self, framing: Framing | None) -> bytes:
        """The bytes for a connection with this output framing (native
        while it is not known yet, and for IRC: its peers translate them)."""
        if framing is None or framing is Framing.NATIVE or framing is Framing.IRC:
            return self.native()
        data = self._others.get(framing)
        if data is None:
            if framing is Framing.WEBSOCKET:
                # The native encoding without its newline: the frame delimits it.
                data = websocket_text_frame(self.native()[:-1])
            else:
                data = encode(self.obj, framing)
            self._others[framing] = data
        return data


class EncodedPayload(Payload):
    """An object given as its native encoding (a ``ROOMS`` put together
    from entries encoded once): decoded only for a framing that needs the
    object (length-prefixed, original)."""

    __slots__ = ()

    def __init__(self, native: bytes) -> None:
        super().__init__({})
        self._native = native
        self.obj = None  # type: ignore[assignment]

    def for_framing(self, framing: Framing | None) -> bytes:
        if self.obj is None and framing not in _FROM_NATIVE:
            self.obj = json.loads(self.native())
        return super().for_framing(framing)


class Writer(Protocol):
    """A connection the outbox can write to."""

    framing: Framing | None

    def write_now(self, data: bytes) -> None:
        """Write bytes behind everything written before."""

    def render(self, payload: Payload) -> bytes:
        """A payload as this connection's bytes (``Framing.IRC`` only)."""

    #: What its rendering of a room's message depends on (``Framing.IRC``
    #: only): connections with the same key share it (``Payload.shared``).
    shared_key: Any


class Outbox:
    """Fan-out queued per connection until the end of the reactor turn.

    With 20 senders broadcasting, a member gets one write per turn instead
    of 20, and a delivery costs a list append. A reply to a connection must
    first :meth:`flush_one` it, so that order per connection holds.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._queued: dict[Writer, list[bytes]] = {}
        self._flush_call: IDelayedCall | None = None
        # Run at the next flush, before it writes (see at_flush).
        self._before_flush: list[Callable[[], object]] = []

    def __bool__(self) -> bool:
        return bool(self._queued)

    def at_flush(self, work: Callable[[], object]) -> None:
        """Run ``work`` at the end of this reactor turn, before the flush
        writes: what it queues goes out in the same writes."""
        self._before_flush.append(work)
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush)

    def add(self, payload: Payload, connections: Iterable[Writer]) -> None:
        """Queue the same encoded bytes for every connection."""
        queued = self._queued
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush)
        native = payload.native()
        native_framing, websocket_framing = Framing.NATIVE, Framing.WEBSOCKET
        irc_framing = Framing.IRC
        # Local names, not a call or an Enum hash per recipient: a room of
        # browsers is all WebSocket.
        websocket: bytes | None = None
        for connection in connections:
            framing = connection.framing
            if framing is native_framing or framing is None:
                data = native
            elif framing is websocket_framing:
                if websocket is None:
                    websocket = payload.for_framing(websocket_framing)
                data = websocket
            elif framing is irc_framing:
                # IRC lines depend on the recipient: its front-end makes
                # them, once for all who see them alike.
                shared = payload.shared
                data = shared.get(connection.shared_key) if shared else None
                if data is None:
                    data = connection.render(payload)
            else:
                data = payload.for_framing(framing)
            chunks = queued.get(connection)
            if chunks is None:
                queued[connection] = [data]
            else:
                chunks.append(data)

    def flush(self) -> None:
        """Write everything queued: one write per connection."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        while self._before_flush:
            work, self._before_flush = self._before_flush, []
            for run in work:
                run()
        queued, self._queued = self._queued, {}
        for connection, chunks in queued.items():
            if len(chunks) == 1:
                connection.write_now(chunks[0])
            elif sum(map(len, chunks)) <= JOIN_MAX:
                connection.write_now(b"".join(chunks))
            else:
                # Large messages are written one by one: what a slow reader's
                # transport keeps is then the fan-out's own bytes, shared by
                # every recipient, not a private joined copy per recipient
                # (200 slow readers of a turn of three 60 kB messages held
                # 36 MB of copies).
                for data in chunks:
                    connection.write_now(data)

    def flush_one(self, connection: Writer) -> None:
        """Write what is queued for one connection now."""
        chunks = self._queued.pop(connection, None)
        if chunks:
            connection.write_now(b"".join(chunks))


def plain_socket(transport: ITransport) -> Any:
    """The socket under a plain TCP transport whose buffers we can see, or
    ``None`` when writes must always go through the transport.

    This module is the only one that reads Twisted's private transport
    attributes (``_BUFFER_ATTRIBUTES``, in :func:`transport_idle`); the
    benchmark shows the gain. A/B on 2026-12-07 (2 shared cores, 4 ABBA
    cycles, medians of 8 runs a side, ``.venv/bin/python -m bench
    --workload broadcast --clients 500 --window 16 --duration 5`` and
    ``--workload private --clients 100 --window 1 --duration 5``), direct
    ``send`` when idle against a ``write_now`` that always calls the
    transport's ``write``: server CPU per delivery 0.339 µs against 0.441
    µs for broadcast w16 at 500 clients (23 % saved; the transport's cost
    1.27-1.34 times the direct one's in each cycle) and 48.1 µs against
    57.0 µs per private w1 message at 100 clients (16 % saved; 1.13-1.22
    times); p99 454 ms against 553 ms and 21.8 ms against 26.4 ms. The
    runs are in bench/README.md ("Issue 20 A/B").
    """
    if isinstance(transport, tcp.Connection) and all(
        hasattr(transport, name) for name in _BUFFER_ATTRIBUTES
    ):
        return transport.getHandle()
    return None


def transport_idle(transport: Any) -> bool:
    """True when a transport given by :func:`plain_socket` holds nothing
    unsent and is open and not TLS: a write may then go to the socket."""
    return not (
        transport._tempDataLen
        or transport.dataBuffer
        or transport.TLS
        or transport.disconnecting
        or not transport.connected
    )
