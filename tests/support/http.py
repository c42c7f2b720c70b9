"""HTTP clients for the web listener's tests: raw ones from a chosen loopback
address, sending a request whole or a byte at a time, and a plain GET."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from tests.support import TIMEOUT, RawClient


class HttpClient(Protocol):
    """A raw HTTP client: writes ``request`` at once, then, if ``dribble``,
    one more header byte every ``pause`` seconds until the server closes
    (never the blank line that ends the headers)."""

    def __init__(self, request: bytes, dribble: bool = False, pause: float = 0.2):
        self.request = request
        self.dribble = dribble
        self.pause = pause
        self.received = b""
        self.opened_at = 0.0
        self.closed_at: float | None = None
        self.answered_at: float | None = None
        self.closed: defer.Deferred[None] = defer.Deferred()
        self.sent = 0
        self._loop: LoopingCall | None = None

    def connectionMade(self) -> None:
        self.opened_at = reactor.seconds()
        self.transport.write(self.request)
        if self.dribble:
            self._loop = LoopingCall(self._one_byte)
            self._loop.start(self.pause, now=False)

    def _one_byte(self) -> None:
        self.sent += 1
        self.transport.write(b"a")

    def dataReceived(self, data: bytes) -> None:
        if self.answered_at is None:
            self.answered_at = reactor.seconds()
        self.received += data

    def connectionLost(self, reason: Failure) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.closed_at = reactor.seconds()
        self.closed.callback(None)


HALF_SENT = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def open_http(
    testcase: TestCase, port: int, request: bytes, source: str, dribble: bool = False
) -> HttpClient:
    """An :class:`HttpClient` from ``source`` to ``127.0.0.1:port``; the
    test's cleanup drops it if still open."""
    endpoint = TCP4ClientEndpoint(
        reactor, "127.0.0.1", port, timeout=TIMEOUT, bindAddress=(source, 0)
    )
    client = await connectProtocol(endpoint, HttpClient(request, dribble))

    async def drop() -> None:
        if client.closed_at is None:
            client.transport.abortConnection()
            await client.closed

    testcase.addCleanup(drop)
    return client


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds, at most :data:`TIMEOUT` seconds."""
    for _ in range(int(TIMEOUT / 0.05)):
        if condition():
            return
        await deferLater(reactor, 0.05, lambda: None)


async def connect_from(testcase: TestCase, port: int, source: str) -> RawClient:
    """A chat :class:`RawClient` from ``source``; closed at cleanup."""
    endpoint = TCP4ClientEndpoint(
        reactor, "127.0.0.1", port, timeout=TIMEOUT, bindAddress=(source, 0)
    )
    client = await connectProtocol(endpoint, RawClient())
    testcase.addCleanup(client.close)
    return client


async def get_from(
    testcase: TestCase, port: int, path: str, source: str, host: str | None = None
) -> tuple[int, bytes]:
    """GET ``path`` of ``127.0.0.1:port`` from ``source`` (``Host``:
    ``host``, by default ``127.0.0.1:port``): status and body."""
    host = host or f"127.0.0.1:{port}"
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    client = await open_http(testcase, port, request.encode(), source)
    await client.closed.addTimeout(TIMEOUT, reactor)
    head, _, body = client.received.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def http_get(port: int, path: str) -> tuple[Any, bytes]:
    """GET ``http://127.0.0.1:port/path``: the response and its body."""
    response = await Agent(reactor).request(
        b"GET", f"http://127.0.0.1:{port}{path}".encode()
    )
    with warnings.catch_warnings():
        # Twisted's own response transport has no abortConnection, which
        # readBody warns of on every call; it reads the whole body all the same.
        warnings.simplefilter("ignore", DeprecationWarning)
        body = readBody(response)
    return response, await body
