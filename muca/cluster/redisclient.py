"""A node's connections to Redis: txredisapi's protocol, with a lean
command path, kept open by :class:`RedisLink`.

txredisapi's protocol fails what is waiting when a connection is lost. Its
own reconnecting is not used: a connection whose ``SELECT`` times out (Redis
stalled) makes it stop trying for good, and it logs every retry.
:class:`RedisLink` reconnects after any loss, with a backoff, and logs once
per outage.
Its way of sending a command and reading the reply costs far more than
Redis takes to run it (a connection-pool lookup through inlineCallbacks,
every argument encoded through a chain of type checks, a reply parsed line
by line, copying what follows each bulk string). A cluster node sends two
commands per batch of messages, so :class:`RedisProtocol` sends commands
that are encoded once (:func:`encode`, :class:`ScriptCall`), through the
transport, and parses each read in one pass. (Writing to the socket past
the transport when nothing was queued gained nothing measurable: 36.2
µs/delivery both ways, median of 6 rounds each of ``python -m bench
--workload private --cluster 2``, ABBA, 2026-12-07.)
"""

from __future__ import annotations

import hashlib
from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import (
    IDelayedCall,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

# The cluster's log lines keep the one namespace they had in one module.
log = Logger(namespace="muca.cluster.redisbus")

#: Seconds before the first reconnection attempt after a loss; each failed
#: attempt doubles it, up to RETRY_MAX: back within a second of Redis coming
#: back, without hammering a Redis that is down.
RETRY_FIRST = 0.2
RETRY_MAX = 1.0

# RESP type bytes.
_BULK, _ARRAY, _STATUS, _ERROR, _INTEGER = b"$*+-:"


def encode(*args: str | bytes) -> bytes:
    """A command in the Redis protocol (RESP), ready to send."""
    return b"*%d\r\n" % len(args) + encode_arguments(args)


def encode_arguments(args: tuple[str | bytes, ...] | list[str | bytes]) -> bytes:
    """Arguments as RESP bulk strings, without the array header."""
    parts = []
    for arg in args:
        raw = arg if isinstance(arg, bytes) else arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class ScriptCall:
    """A Lua script with fixed keys, run by its SHA1 (``EVALSHA``) and sent
    whole (``EVAL``) only when Redis does not have it (after a restart)."""

    def __init__(self, script: str, keys: list[str], first: list[str]) -> None:
        """``first``: arguments that come before every call's own."""
        body = script.encode()
        self.fixed = 3 + len(keys) + len(first)
        tail = encode_arguments([str(len(keys)), *keys, *first])
        sha = hashlib.sha1(body).hexdigest()  # noqa: S324 (Redis names scripts so)
        self._by_sha = encode_arguments(["EVALSHA", sha]) + tail
        self._whole = encode_arguments([b"EVAL", body]) + tail

    def by_sha(self, args: tuple[str, ...]) -> bytes:
        """``EVALSHA`` with these arguments."""
        return self._command(self._by_sha, args)

    def whole(self, args: tuple[str, ...]) -> bytes:
        """``EVAL`` with these arguments."""
        return self._command(self._whole, args)

    def _command(self, head: bytes, args: tuple[str, ...]) -> bytes:
        return b"*%d\r\n" % (self.fixed + len(args)) + head + encode_arguments(args)


class RedisProtocol(txredisapi.RedisProtocol):
    """txredisapi's protocol with :meth:`command` and a one-pass parser.

    Replies are what txredisapi gives with ``convertNumbers=False``: bulk
    strings as ``str`` (``bytes`` when not UTF-8), nil as ``None``, integers
    as ``int``, errors as :class:`txredisapi.ResponseError`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffer = b""
        # Arrays being read: [elements still missing, elements so far].
        self._open: list[list[Any]] = []
        #: Set when a reply did not come in time: nothing more is sent here.
        self.given_up = False

    def connectionMade(self) -> None:
        """Select the database; the connection is ready (``whenConnected``)
        once Redis has answered, so that a stalled Redis, which accepts
        connections but answers nothing, gives no connection that looks
        ready. A ``SELECT`` that fails or times out drops the connection
        (txredisapi's own setup would also stop reconnecting for good):
        :class:`RedisLink` tries again."""
        db, self.dbid = self.dbid or 0, None
        selected = self.command(encode("SELECT", str(db)))
        selected.addCallbacks(self._selected, self._not_selected)

    def _selected(self, _: Any) -> None:
        # txredisapi's own setup, with nothing left to do but mark it ready.
        super().connectionMade()

    def _not_selected(self, failure: Failure) -> None:
        self.given_up = True
        self.transport.abortConnection()

    def command(self, data: bytes) -> Deferred[Any]:
        """Send an encoded command; fire with its reply, or fail with the
        error Redis answered. With no reply within ``replyTimeout`` this and
        every later command fail and the connection is dropped (txredisapi
        then reconnects), as txredisapi's own commands do."""
        if not self.connected or self.given_up:
            return defer.fail(txredisapi.ConnectionError("Not connected"))
        self.transport.write(data)
        reply = self.replyQueue.get()
        timeout = self.callLater(self.replyTimeout, self._no_reply)
        reply.addBoth(_cancel_timeout, timeout)
        return reply.addCallback(self.handle_reply)

    def _no_reply(self) -> None:
        # Given up before the waiting commands hear of it: what they send
        # next must not go on this connection.
        self.given_up = True
        self.transport.abortConnection()
        error = txredisapi.TimeoutError(
            f"Not received Redis response in {self.replyTimeout} seconds"
        )
        while self.replyQueue.waiting:
            self.replyQueue.put(error)

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        """Parse every whole reply in what has been read, in one pass."""
        buffer = self._buffer + data if self._buffer else data
        end = len(buffer)
        position = 0
        open_arrays = self._open
        while position < end:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                break
            kind = buffer[position]
            value: Any
            if kind == _BULK:
                length = int(buffer[position + 1 : line_end])
                if length < 0:
                    value = None
                    position = line_end + 2
                else:
                    start = line_end + 2
                    stop = start + length
                    if stop + 2 > end:
                        break  # The rest of the string is still on its way.
                    raw = buffer[start:stop]
                    try:
                        value = raw.decode()
                    except UnicodeDecodeError:
                        value = raw
                    position = stop + 2
            elif kind == _ARRAY:
                count = int(buffer[position + 1 : line_end])
                position = line_end + 2
                if count > 0:
                    # Most arrays are of strings (a stream entry's fields):
                    # read them at once, else element by element.
                    strings = _strings(buffer, position, count)
                    if strings is None:
                        open_arrays.append([count, []])
                        continue
                    value, position = strings
                else:
                    value = None if count < 0 else []
            elif kind == _STATUS:
                value = buffer[position + 1 : line_end].decode()
                position = line_end + 2
            elif kind == _ERROR:
                value = txredisapi.ResponseError(
                    buffer[position + 1 : line_end].decode(errors="replace")
                )
                position = line_end + 2
            elif kind == _INTEGER:
                value = int(buffer[position + 1 : line_end])
                position = line_end + 2
            else:
                # Not Redis speaking: drop the connection (and what waits).
                self._buffer = b""
                self.transport.abortConnection()
                return
            # Into the innermost open array, closing those it completes.
            while open_arrays:
                innermost = open_arrays[-1]
                innermost[1].append(value)
                innermost[0] -= 1
                if innermost[0]:
                    break
                open_arrays.pop()
                value = innermost[1]
            else:
                self.replyReceived(value)
        self._buffer = buffer[position:]


def _strings(buffer: bytes, position: int, count: int) -> tuple[list[Any], int] | None:
    """``count`` bulk strings from ``position`` on, and where they end; or
    ``None`` if they are not all strings, or not all there yet."""
    items: list[Any] = []
    append = items.append
    find = buffer.find
    end = len(buffer)
    for _ in range(count):
        if position >= end or buffer[position] != _BULK:
            return None
        line_end = find(b"\r\n", position)
        if line_end < 0:
            return None
        length = int(buffer[position + 1 : line_end])
        if length < 0:
            append(None)
            position = line_end + 2
            continue
        start = line_end + 2
        position = start + length + 2
        if position > end:
            return None
        raw = buffer[start : position - 2]
        try:
            append(raw.decode())
        except UnicodeDecodeError:
            append(raw)
    return items, position


def _cancel_timeout(result: Any, timeout: Any) -> Any:
    if timeout.active():
        timeout.cancel()
    return result


class RedisLink:
    """One connection to Redis, kept open: after any loss (Redis stopped,
    restarted or stalled, the network cut) it connects again, RETRY_FIRST
    seconds later, doubling up to RETRY_MAX while attempts fail.

    :func:`connected` gives its connection while it is up and ready. Logs
    one line when an outage starts and one when it ends, with the number of
    attempts it took, however long it lasts.
    """

    def __init__(
        self,
        clock: Any,
        endpoint: IStreamClientEndpoint,
        factory: txredisapi.RedisFactory,
        name: str,
    ) -> None:
        """``name``: what this connection is for, in the log lines."""
        self.clock = clock
        self.endpoint = endpoint
        self.factory = factory
        self.name = name
        #: The connection while it is ready, else None.
        self.protocol: RedisProtocol | None = None
        # The connection being made or set up (SELECT), not ready yet.
        self._trying: RedisProtocol | None = None
        self._attempt: Deferred[Any] | None = None
        self._retry: IDelayedCall | None = None
        self._stopped = False
        # Failed attempts since the last ready connection, and since when.
        self.failures = 0
        self._down_since: float | None = None
        self._closed: list[Deferred[None]] = []

    def start(self) -> None:
        """Connect, and keep connected until :meth:`disconnect`."""
        self._connect()

    def _connect(self) -> None:
        self._retry = None
        if self._stopped:
            return
        attempt = self._attempt = self.endpoint.connect(self.factory)
        attempt.addCallbacks(self._made, self._failed)

    def _made(self, protocol: RedisProtocol) -> None:
        self._attempt = None
        if self._stopped:
            protocol.transport.abortConnection()
            return
        self._trying = protocol
        protocol.whenConnected().addCallback(self._ready)
        protocol.whenDisconnected().addCallback(self._lost)

    def _ready(self, protocol: RedisProtocol) -> None:
        self._trying = None
        self.protocol = protocol
        if self._down_since is not None:
            log.info(
                "cluster: {name} connection to Redis again after {n} attempts"
                " ({seconds:.1f} s)",
                name=self.name,
                n=self.failures + 1,
                seconds=self.clock.seconds() - self._down_since,
            )
        self.failures = 0
        self._down_since = None

    def _lost(self, protocol: RedisProtocol) -> None:
        was_ready = protocol is self.protocol
        if was_ready:
            self.protocol = None
        elif protocol is self._trying:
            self._trying = None
        if self._stopped:
            closed, self._closed = self._closed, []
            for d in closed:
                d.callback(None)
            return
        if was_ready:
            # A new outage: try again at once (a restarted Redis answers).
            self._outage("connection lost")
            self._schedule(0)
        else:
            self._failed(None)

    def _failed(self, failure: Failure | None) -> None:
        self._attempt = None
        if self._stopped:
            return
        self._outage("no answer" if failure is None else failure.getErrorMessage())
        self.failures += 1
        self._schedule(min(RETRY_FIRST * 2 ** (self.failures - 1), RETRY_MAX))

    def _outage(self, why: str) -> None:
        """Once per outage: say so, and note when it began."""
        if self._down_since is not None:
            return
        self._down_since = self.clock.seconds()
        log.info(
            "cluster: {name} connection to Redis: {why}; reconnecting",
            name=self.name,
            why=why,
        )

    def _schedule(self, delay: float) -> None:
        self._retry = self.clock.callLater(delay, self._connect)

    def disconnect(self) -> Deferred[Any]:
        """Stop reconnecting and close the connection; fire once closed."""
        self._stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._attempt is not None:
            self._attempt.addErrback(lambda _: None)
            self._attempt.cancel()
        protocol = self.protocol or self._trying
        if protocol is None or not protocol.connected:
            return defer.succeed(None)
        closed: Deferred[None] = Deferred()
        self._closed.append(closed)
        protocol.transport.loseConnection()
        return closed


class RedisFactory(txredisapi.RedisFactory):
    """Builds :class:`RedisProtocol` connections to database ``db`` whose
    reply timeouts run on ``clock`` (txredisapi's run on the global
    reactor); ``timeout``: seconds a command may wait for its reply."""

    protocol = RedisProtocol

    def __init__(
        self, clock: IReactorTime, host: str, port: int, db: int, timeout: float
    ) -> None:
        super().__init__(
            f"redis://{host}:{port}/{db}",
            db,
            1,
            isLazy=True,
            replyTimeout=timeout,
            # User ids that look like numbers must stay strings.
            convertNumbers=False,
        )
        self.clock = clock

    def buildProtocol(self, addr: Any) -> RedisProtocol:
        protocol: RedisProtocol = super().buildProtocol(addr)
        protocol.callLater = self.clock.callLater
        return protocol


def connect(
    reactor: Any, host: str, port: int, db: int, timeout: float, name: str = "Redis"
) -> RedisLink:
    """A :class:`RedisLink` keeping one :class:`RedisProtocol` connection
    open, started; ``timeout``: seconds a command may wait for its reply."""
    factory = RedisFactory(reactor, host, port, db, timeout)
    link = RedisLink(reactor, HostnameEndpoint(reactor, host, port, 2), factory, name)
    link.start()
    return link


def connected(link: RedisLink | None) -> RedisProtocol | None:
    """The link's connection when it is open and ready, else ``None``."""
    if link is None:
        return None
    protocol = link.protocol
    if protocol is None or not protocol.connected or protocol.given_up:
        return None
    return protocol
