"""Shared helpers for tests that talk to a real MUCA server over loopback TCP.

Loopback pieces, for trial test cases (``twisted.trial.unittest.TestCase``)
running on the global reactor:

- :func:`start_server` builds the very service that ``twistd muca`` builds
  (``muca.service.tap.Options`` then ``muca.service.tap.makeService``), starts
  it listening on an OS-chosen loopback port and returns that port; the
  test's cleanup stops it.
- :func:`connect` opens a :class:`RawClient`: a tiny client that writes raw
  bytes or objects, collects every byte it receives and decodes the JSON
  objects in them (either framing) on its own, independently of
  ``muca.protocol.wire``. Its cleanup closes the connection and waits for the close.

And one in-memory piece, for protocol tests without sockets or a reactor:

- :class:`MemoryServer` is a ``ChatFactory`` on a ``MemoryReactorClock``;
  :meth:`MemoryServer.connect` gives a :class:`MemoryPeer` whose transport
  records every write.

Typical use::

    async def test_join(self) -> None:
        port = await start_server(self)
        client = await connect(self, port)
        client.send_json({"CMD": "JOIN", "UN": "Tony", "UID": "tony@hku.hk"})
        ack, roster = await client.next_objects(2)
"""

from __future__ import annotations

import codecs
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.cred.portal import Portal
from twisted.internet import defer, interfaces, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from muca.server.bus import Bus
from muca.server.context import NodeConfig, NodeContext
from muca.server.node import ChatFactory
from muca.server.output import Outbox
from muca.service import tap
from muca.store.base import MessageStore

#: Seconds a test waits for something expected before failing.
TIMEOUT = 10.0

#: The ``ACK`` a server sends for an accepted ``JOIN``.
OKAY = {"CMD": "ACK", "TYPE": "OKAY"}

#: The ``ACK`` for an accepted ``"V": 2`` ``JOIN``: with the longest frame
#: the server takes (the default).
OKAY_V2 = {"CMD": "ACK", "TYPE": "OKAY", "MAX_FRAME": 65536}

_JSON = json.JSONDecoder()
_WHITESPACE = " \t\r\n"


async def start_server(
    testcase: TestCase, *args: str, listen: str = "tcp:0:interface=127.0.0.1"
) -> int:
    """Start the ``twistd muca`` service on loopback; return its TCP port.

    ``args`` are extra ``twistd muca`` options, e.g. ``"--max-frame", "100"``.
    The service is started as twistd starts it (privileged start, then
    start) and stopped by the test's cleanup, which waits for the port to
    close. ``--list-interval 0`` is added unless ``args`` set it, so that
    every join or leave in its own reactor turn gets its own ``LIST``.
    """
    (port,) = await start_service(testcase, "--listen", listen, *args)
    return port.getHost().port


async def start_service(testcase: TestCase, *args: str) -> list[IListeningPort]:
    """Start the ``twistd muca`` service with these options (``--list-interval
    0`` and ``--db none`` unless given); return its listening ports once they
    listen. The test's cleanup stops it."""
    options = tap.Options()
    if not any(arg.startswith("--list-interval") for arg in args):
        args = ("--list-interval", "0", *args)
    if not any(arg.startswith("--db") for arg in args):
        # The history's own tests name their database; the others need none
        # (and must not share one muca.db in the working directory).
        args = ("--db", "none", *args)
    if not any(arg.startswith("--web") for arg in args):
        # Not the default web port 40080: tests run side by side.
        args = ("--web", "none", *args)
    options.parseOptions(list(args))
    service = tap.makeService(options)
    service.privilegedStartService()
    service.startService()
    testcase.addCleanup(service.stopService)
    # The endpoint services keep the Deferred of their listening port
    # privately; there is no public accessor in Twisted.
    listening = [
        child._waitingForPort
        for child in service
        if isinstance(child, StreamServerEndpointService)
    ]
    return await defer.gatherResults(listening)


async def connect(
    testcase: TestCase, port: int, kind: type[RawClient] | None = None
) -> RawClient:
    """Connect a :class:`RawClient` (or ``kind``, e.g. :class:`OriginalClient`)
    to ``127.0.0.1:port``; the test's cleanup closes it."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)
    client = await connectProtocol(endpoint, (kind or RawClient)())
    testcase.addCleanup(client.close)
    return client


async def join_all(
    testcase: TestCase,
    port: int,
    who: Sequence[tuple[str, str]],
    kind: type[RawClient] | None = None,
) -> list[RawClient]:
    """Connect and join each ``(nickname, uid)`` in order, checking every
    ``ACK`` and ``LIST`` on the way; every client has read all it was sent."""
    clients: list[RawClient] = []
    for i, (nickname, uid) in enumerate(who):
        client = await connect(testcase, port, kind)
        client.send_json(join(nickname, uid))
        expected = roster(*who[: i + 1])
        testcase.assertEqual(await client.next_objects(2), [OKAY, expected])
        for earlier in clients:
            testcase.assertEqual(await earlier.next_object(), expected)
        clients.append(client)
    return clients


class RawClient(Protocol):
    """A loopback test client: raw bytes out, raw bytes and objects in.

    :attr:`received` holds every byte received, :attr:`objects` every JSON
    object decoded from them, in order, whatever the framing (and tolerant of
    whitespace between objects). :meth:`next_objects` hands them out in
    order, each exactly once.
    """

    def __init__(self) -> None:
        self.received = bytearray()
        self.objects: list[Any] = []
        self.lost: Failure | None = None
        self._text = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._taken = 0
        self._waiters: list[tuple[int, defer.Deferred[list[Any]]]] = []
        self._close_waiters: list[defer.Deferred[None]] = []

    # Sending

    def send(self, data: bytes) -> None:
        """Write raw bytes."""
        self.transport.write(data)

    def send_json(self, obj: Any, newline: bool = True, **dumps: Any) -> None:
        """Write one object as UTF-8 JSON, followed by ``\\n`` unless told not.

        ``dumps`` go to :func:`json.dumps` (e.g. ``ensure_ascii=True``).
        """
        dumps.setdefault("ensure_ascii", False)
        data = json.dumps(obj, **dumps).encode("utf-8")
        self.send(data + b"\n" if newline else data)

    async def send_slowly(
        self, data: bytes, chunk: int = 1, pause: float = 0.002
    ) -> None:
        """Write ``data`` in pieces of ``chunk`` bytes, ``pause`` s apart.

        On loopback a pause of a few milliseconds makes each piece arrive at
        the server as a read of its own (one reactor turn is not enough: the
        server then reads two pieces at once).
        """
        for start in range(0, len(data), chunk):
            self.transport.write(data[start : start + chunk])
            await deferLater(reactor, pause, lambda: None)

    # Receiving

    def next_objects(self, count: int, timeout: float = TIMEOUT) -> defer.Deferred:
        """Fire with the next ``count`` objects not yet handed out.

        Fails with ``defer.TimeoutError`` when they do not all come in time,
        or with the connection's loss reason when it closes first.
        """
        waiter: defer.Deferred[list[Any]] = defer.Deferred()
        self._waiters.append((count, waiter))
        waiter.addTimeout(timeout, reactor)
        waiter.addBoth(self._forget, waiter)
        self._serve()
        return waiter

    async def next_object(self, timeout: float = TIMEOUT) -> Any:
        """The next object not yet handed out (see :meth:`next_objects`)."""
        (obj,) = await self.next_objects(1, timeout)
        return obj

    def pending(self) -> list[Any]:
        """Objects received and not handed out yet (without waiting)."""
        return self.objects[self._taken :]

    def closed(self, timeout: float = TIMEOUT) -> defer.Deferred:
        """Fire with ``None`` once the connection is closed (reason: :attr:`lost`)."""
        if self.lost is not None:
            return defer.succeed(None)
        done: defer.Deferred[None] = defer.Deferred()
        self._close_waiters.append(done)
        return done.addTimeout(timeout, reactor)

    def close(self) -> defer.Deferred:
        """Close the connection and fire once it is closed (also for cleanup)."""
        if self.lost is None and self.transport is not None:
            self.transport.loseConnection()
        return self.closed()

    # Twisted callbacks

    def connectionMade(self) -> None:
        # Every write its own segment, so that split tests really split.
        if interfaces.ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self.objects += self.decode(data)
        self._serve()

    def decode(self, data: bytes) -> list[Any]:
        """Turn received bytes into the objects they complete."""
        objects, self._text = split_objects(self._text + self._utf8.decode(data))
        return objects

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason
        for _, waiter in list(self._waiters):
            waiter.errback(reason)
        waiters, self._close_waiters = self._close_waiters, []
        for done in waiters:
            if not done.called:
                done.callback(None)

    # Internals

    def _serve(self) -> None:
        while self._waiters:
            count, waiter = self._waiters[0]
            if len(self.objects) - self._taken < count:
                return
            self._waiters.pop(0)
            objects = self.objects[self._taken : self._taken + count]
            self._taken += count
            waiter.callback(objects)

    def _forget(self, result: Any, waiter: defer.Deferred) -> Any:
        self._waiters = [(n, w) for n, w in self._waiters if w is not waiter]
        return result


class OriginalClient(RawClient):
    """Speaks on the wire exactly as the original MUCA client does.

    Out: each object as ``json.dumps`` writes it by default (ASCII, ``", "``
    and ``": "`` separators), back to back, no newline. In: the text split
    on ``}{``, each piece given back the braces the split took, each piece
    ``json.loads``-ed. The original did that on every ``recv``; this one
    keeps unparsable text until more arrives, since loopback may cut
    anywhere. A server that puts a newline between objects or lets ``}{``
    appear inside a string makes a piece unparsable, and the test times out
    waiting for its objects (:attr:`pending_text` shows what is stuck).
    """

    def __init__(self) -> None:
        super().__init__()
        self.pending_text = ""

    def send_json(self, obj: Any, newline: bool = False, **dumps: Any) -> None:
        """Write one object as the original client does (``newline`` ignored).

        ``dumps`` may pick compact separators; the output stays ASCII.
        """
        dumps["ensure_ascii"] = True
        self.send(json.dumps(obj, **dumps).encode("ascii"))

    def decode(self, data: bytes) -> list[Any]:
        text = self.pending_text + self._utf8.decode(data)
        pieces = text.split("}{")
        last = len(pieces) - 1
        whole = [
            "{" * (i > 0) + piece + "}" * (i < last) for i, piece in enumerate(pieces)
        ]
        try:
            objects = [json.loads(piece) for piece in whole]
        except json.JSONDecodeError:
            self.pending_text = text
            return []
        self.pending_text = ""
        return objects


def split_objects(text: str) -> tuple[list[Any], str]:
    """Cut JSON values off the front of ``text``, whatever the framing.

    Returns the values and the incomplete rest. Independent of ``muca.protocol.wire``
    on purpose: it checks what the server writes, not how our decoder reads.
    """
    objects = []
    while True:
        start = len(text) - len(text.lstrip(_WHITESPACE))
        if start == len(text):
            return objects, ""
        try:
            obj, end = _JSON.raw_decode(text, start)
        except json.JSONDecodeError:
            return objects, text[start:]
        objects.append(obj)
        text = text[end:]


async def until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Let the reactor run until ``predicate()`` is true (looked at every
    50 ms); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await deferLater(reactor, 0.05)


def roster(*peers: tuple[str, str]) -> dict[str, Any]:
    """The ``LIST`` a server sends for these ``(nickname, uid)`` peers, in order."""
    return {"CMD": "LIST", "DATA": [{"UN": un, "UID": uid} for un, uid in peers]}


def join(nickname: str, uid: str, **extra: Any) -> dict[str, Any]:
    """A ``JOIN`` object as an original client sends it (plus ``extra`` fields)."""
    return {"CMD": "JOIN", "UN": nickname, "UID": uid, **extra}


def send(text: str, to: Sequence[str], sender: str) -> dict[str, Any]:
    """A ``SEND`` object."""
    return {"CMD": "SEND", "MSG": text, "TO": list(to), "FROM": sender}


def msg(kind: str, text: str, sender: str, to: list[str] | None = None) -> dict:
    """A delivered ``MSG`` without its ``TS`` and ``ID`` stamps."""
    obj = {"CMD": "MSG", "TYPE": kind, "MSG": text, "FROM": sender}
    if to is not None:
        obj["TO"] = to
    return obj


def strip_ts(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without the stamps every ``MSG`` carries: ``TS`` (time)
    and ``ID`` (checked by the tests of message ids)."""
    return {k: v for k, v in obj.items() if k not in ("TS", "ID")}


class RecordingTransport(StringTransport):
    """A ``StringTransport`` that also keeps every written bytes object."""

    def __init__(self, peer_port: int, host: str = "127.0.0.1") -> None:
        super().__init__(peerAddress=IPv4Address("TCP", host, peer_port))
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


class MemoryServer:
    """A ``ChatFactory`` on a fake clock, for in-memory protocol tests.

    ``store`` (opened), ``portal``, ``accounts`` (``--auth db``'s) and
    ``bus`` (a :class:`LocalBus` on the store unless given) go to its
    ``NodeContext``, the other keywords to its
    ``NodeConfig``; ``list_interval`` defaults to
    0 so that every roster change is sent at the end of its reactor turn
    (:meth:`MemoryPeer.take` runs that turn's delayed calls), and
    ``ack_alone`` to 0 (an original client's output is not held after its
    ACK; tests/server/test_ack_alone.py holds it).
    """

    def __init__(
        self,
        store: MessageStore | None = None,
        portal: Portal | None = None,
        bus: Bus | None = None,
        accounts: Any = None,
        **config: Any,
    ) -> None:
        config.setdefault("list_interval", 0)
        config.setdefault("ack_alone", 0)
        self.clock = MemoryReactorClock()
        settings = NodeConfig(**config)
        if bus is None:
            context = NodeContext.alone(self.clock, settings, store, portal)
        else:
            outbox = Outbox(self.clock)
            context = NodeContext(self.clock, bus, outbox, settings, store, portal)
        context.accounts = accounts
        self.factory = ChatFactory(context)
        self.factory.doStart()
        self._next_port = 50000

    def connect(self, host: str = "127.0.0.1") -> MemoryPeer:
        """A new connection to the server, from ``host``."""
        self._next_port += 1
        address = IPv4Address("TCP", host, self._next_port)
        protocol = self.factory.buildProtocol(address)
        transport = RecordingTransport(self._next_port, host)
        protocol.makeConnection(transport)
        return MemoryPeer(self, protocol, transport)

    def stop(self) -> None:
        """Stop the factory, as the reactor would at shutdown."""
        self.factory.doStop()


class MemoryPeer:
    """One in-memory connection: bytes in through ``dataReceived``, bytes out
    recorded by a :class:`RecordingTransport`."""

    def __init__(
        self, server: MemoryServer, protocol: Any, transport: RecordingTransport
    ) -> None:
        self.server = server
        self.protocol = protocol
        self.transport = transport

    def send(self, data: bytes) -> None:
        """Deliver raw bytes to the server protocol."""
        self.protocol.dataReceived(data)

    def send_json(self, obj: Any, newline: bool = True, **dumps: Any) -> None:
        """Deliver one object as UTF-8 JSON, ``\\n``-terminated unless told not."""
        dumps.setdefault("ensure_ascii", False)
        data = json.dumps(obj, **dumps).encode("utf-8")
        self.send(data + b"\n" if newline else data)

    def take_bytes(self) -> bytes:
        """End the reactor turn; return and forget what the server wrote."""
        self.server.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        return data

    def take(self) -> list[Any]:
        """End the reactor turn; return the objects the server wrote since last time."""
        objects, rest = split_objects(self.take_bytes().decode("utf-8"))
        if rest:
            raise AssertionError(f"server wrote an incomplete object: {rest!r}")
        return objects

    def lose(self) -> None:
        """The connection closes (the client left or the network broke)."""
        self.protocol.connectionLost(Failure(ConnectionDone()))

    @property
    def closed_by_server(self) -> bool:
        """True once the server asked to close this connection."""
        return bool(self.transport.disconnecting)
