"""A WebSocket test client (``wsproto`` over a real loopback TCP connection)
and a server with a web listener."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from muca.server.node import ChatFactory
from tests.support import TIMEOUT, RawClient, start_service


async def start_web_server(testcase: TestCase, *args: str) -> tuple[int, int]:
    """Start the ``twistd muca`` service with a TCP and a web listener on
    loopback; return ``(tcp_port, web_port)``."""
    _, tcp_port, web_port = await start_web_service(testcase, *args)
    return tcp_port, web_port


async def start_web_service(
    testcase: TestCase, *args: str
) -> tuple[ChatFactory, int, int]:
    """As :func:`start_web_server`; also the service's chat factory."""
    tcp, web = await start_service(
        testcase,
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--web",
        "tcp:0:interface=127.0.0.1",
        *args,
    )
    return tcp.factory, tcp.getHost().port, web.getHost().port


class WebSocketClient(RawClient):
    """A :class:`RawClient` that speaks WebSocket: each object it sends is
    one text message, each text message it receives must be one object.

    :attr:`messages` holds every message received as it came (``str`` for
    text, ``bytes`` for binary); :attr:`status` is the handshake's HTTP
    status once answered (101 when accepted).
    """

    def __init__(self, host: str, origin: str | None = None) -> None:
        super().__init__()
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._host = host
        self._origin = origin
        self.messages: list[Any] = []
        self.status: int | None = None
        self.close_code: int | None = None
        self.answered: defer.Deferred[int] = defer.Deferred()
        self._pongs: list[defer.Deferred[None]] = []
        self._partial: list[str] = []

    def connectionMade(self) -> None:
        super().connectionMade()
        headers = [] if self._origin is None else [(b"Origin", self._origin.encode())]
        self.transport.write(
            self._ws.send(Request(host=self._host, target="/ws", extra_headers=headers))
        )

    def send_text(self, text: str, finished: bool = True) -> None:
        """Send one text message, or a part of one when not ``finished``."""
        self.transport.write(
            self._ws.send(TextMessage(text, message_finished=finished))
        )

    def ping(self) -> defer.Deferred[None]:
        """Send a ping; fire when its pong comes, i.e. once the server has
        read everything sent before it."""
        pong: defer.Deferred[None] = defer.Deferred()
        self._pongs.append(pong)
        self.transport.write(self._ws.send(Ping(b"?")))
        return pong.addTimeout(TIMEOUT, reactor)

    def send_bytes(self, data: bytes) -> None:
        """Send one binary message."""
        self.transport.write(self._ws.send(BytesMessage(data)))

    def send_json(self, obj: Any, newline: bool = False, **dumps: Any) -> None:
        """Send one object as one text message (``newline`` ignored)."""
        dumps.setdefault("ensure_ascii", False)
        self.send_text(json.dumps(obj, **dumps))

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._ws.receive_data(data)
        for event in self._ws.events():
            self._event(event)
        self._serve()

    def _event(self, event: Any) -> None:
        if isinstance(event, AcceptConnection):
            self._answer(101)
        elif isinstance(event, RejectConnection):
            self._answer(event.status_code)
        elif isinstance(event, TextMessage):
            self._partial.append(event.data)
            if event.message_finished:
                message = "".join(self._partial)
                self._partial = []
                self.messages.append(message)
                self.objects.append(json.loads(message))
        elif isinstance(event, BytesMessage):
            self.messages.append(bytes(event.data))
        elif isinstance(event, Ping):
            self.transport.write(self._ws.send(event.response()))
        elif isinstance(event, Pong):
            if self._pongs:
                self._pongs.pop(0).callback(None)
        elif isinstance(event, CloseConnection):
            self.close_code = event.code
            self.transport.loseConnection()

    def _answer(self, status: int) -> None:
        self.status = status
        if not self.answered.called:
            self.answered.callback(status)

    def connectionLost(self, reason: Failure) -> None:
        if not self.answered.called:
            self.answered.errback(reason)
        super().connectionLost(reason)


async def connect_websocket(
    testcase: TestCase,
    port: int,
    origin: str | None = None,
    host: str | None = None,
    source: str | None = None,
    address: str = "127.0.0.1",
) -> WebSocketClient:
    """A :class:`WebSocketClient` to ``address:port`` (from the loopback
    address ``source`` if given) whose handshake has been answered (check
    :attr:`WebSocketClient.status`); closed at cleanup."""
    endpoint = TCP4ClientEndpoint(
        reactor,
        address,
        port,
        timeout=TIMEOUT,
        bindAddress=None if source is None else (source, 0),
    )
    client = WebSocketClient(host or f"{address}:{port}", origin)
    await connectProtocol(endpoint, client)
    testcase.addCleanup(client.close)
    await client.answered.addTimeout(TIMEOUT, reactor)
    return client
