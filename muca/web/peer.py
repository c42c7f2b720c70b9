"""A WebSocket peer: the WebSocket front-end of the session layer.

``twisted.web.websocket`` hands over whole text and binary messages; a
:class:`WebSocketPeer` (a ``twisted.web.websocket`` protocol, and a
``muca.server.connection.ChatConnection`` like the TCP front-end) decodes
each text message as one JSON object and hands it on as a frame, so that
the session calls, checks, limits, flow control, slow-consumer handling and
rosters are the same code as for TCP. Its output is whole WebSocket frames
already (``Framing.WEBSOCKET``, encoded once per fan-out), written to the
TCP connection under the WebSocket. Pings and pongs are taken from
``twisted.web.websocket`` too (:class:`ControlFrames`): each is a frame of
the connection, under its rate limit, and a pong is its output, under its
outbound limits.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.server import Request
from twisted.web.websocket import WebSocketTransport
from wsproto.events import Ping, Pong
from wsproto.utilities import LocalProtocolError

from muca.protocol.wire import BAD_JSON, FRAME_TOO_LONG, BadFrame, Framing
from muca.server.connection import ChatConnection, Control

_BINARY = BadFrame(BAD_JSON, "binary messages are not understood: send JSON as text")
_NOT_JSON = BadFrame(BAD_JSON, "message is not valid JSON")
_NOT_AN_OBJECT = BadFrame(BAD_JSON, "expected a JSON object")


class TooLong(str):
    """What a capped buffer delivers in place of a message over the limit."""


class CappedBuffer:
    """Reassembles one message's chunks, keeping at most ``limit`` of them.

    Takes the place of ``twisted.web.websocket``'s own buffer, which keeps a
    message however long: past the limit the chunks are dropped as they
    come and the message is delivered as an empty :class:`TooLong`.
    """

    def __init__(self, empty: Any, limit: int) -> None:
        self._empty = empty
        self._chunks: list[Any] = []
        self._size = 0
        self._limit = limit
        self._over = False

    def add(self, new: Any) -> None:
        """One more chunk of the message being received."""
        if self._over:
            return
        # Characters for text: never more than its UTF-8 bytes, so a text
        # counted over the limit is over it in bytes too.
        self._size += len(new)
        if self._size > self._limit:
            self._over = True
            self._chunks.clear()
        else:
            self._chunks.append(new)

    def held(self) -> int:
        """How much of the message being received is kept (at most the limit)."""
        return sum(len(chunk) for chunk in self._chunks)

    def done(self) -> Any:
        """The whole message, or :class:`TooLong`; ready for the next one."""
        over, chunks = self._over, self._chunks
        self._chunks, self._size, self._over = [], 0, False
        if over:
            return TooLong()
        return chunks[0] if len(chunks) == 1 else self._empty.join(chunks)


class ControlFrames:
    """The wsproto connection of a ``twisted.web.websocket`` wire protocol,
    with the pings and pongs taken out of its events and handed to the
    connection as :class:`Control` frames.

    ``twisted.web.websocket`` answers every ping at once, straight to the
    TCP connection: a peer that pings without reading made the server hold
    every pong (hundreds of MB a minute), past the rate limit and
    ``--max-outbound``. Here a ping waits for its token like any frame and
    its pong is written as the connection's own output.
    """

    def __init__(self, connection: Any, chat: ChatConnection) -> None:
        self._connection = connection
        self._chat = chat

    def __getattr__(self, name: str) -> Any:
        # receive_data, send, state: the wsproto connection's own.
        return getattr(self._connection, name)

    def events(self) -> Any:
        """The connection's events but pings and pongs, which become frames."""
        for event in self._connection.events():
            if isinstance(event, Ping):
                try:
                    answer = self._connection.send(event.response())
                except LocalProtocolError:
                    answer = b""  # closing: no pong any more
                self._chat.frames_received([Control(answer)])
            elif isinstance(event, Pong):
                self._chat.frames_received([Control()])
            else:
                yield event


def _take_over_messages_and_pings(
    transport: WebSocketTransport, chat: ChatConnection, max_frame: int
) -> None:
    """Cap the buffers ``transport`` reassembles messages in (text at
    ``max_frame``, binary at nothing: refused whatever their content) and
    hand its pings and pongs to ``chat`` (:class:`ControlFrames`).

    The one place that reaches into ``twisted.web.websocket``'s private
    attributes (of ``twisted.web._websocket_impl._WebSocketWireProtocol``,
    Twisted 26.10): its public API has no way to do either. Neither
    ``WebSocketResource`` nor ``WebSocketTransport`` takes a message size
    limit (a message is kept whole in ``_textBuffer``/``_bytesBuffer``,
    however long), and ``WebSocketProtocol`` has ``pongReceived`` but no
    ``pingReceived``: every ping is answered at once, straight to the TCP
    connection, through ``_wsconn``. Each attribute is checked, so that a
    Twisted that renames one fails the tests instead of silently buffering
    or answering pings again.
    """
    for name in ("_textBuffer", "_bytesBuffer", "_wsconn"):
        if not hasattr(transport, name):
            raise RuntimeError(f"twisted.web.websocket has no {name} to take over")
    wire: Any = transport
    wire._textBuffer = CappedBuffer("", max_frame)
    wire._bytesBuffer = CappedBuffer(b"", 0)
    wire._wsconn = ControlFrames(wire._wsconn, chat)


class WebSocketPeer(ChatConnection):
    """One WebSocket connection (a ``twisted.web.websocket`` protocol): the
    WebSocket front-end of the chat factory's sessions.

    Its byte stream is the TCP connection under the WebSocket: output is
    whole WebSocket frames already (``Framing.WEBSOCKET``, encoded once per
    fan-out), written there; reading is paused and resumed there too. It is
    the producer of the WebSocket, so the TCP connection's full-buffer
    signal reaches it as for a TCP peer.
    """

    def __init__(self, factory: Any, request: Request) -> None:
        super().__init__()
        self.factory = factory
        self.framing = Framing.WEBSOCKET
        self._max_frame: int = factory.config.max_frame
        #: The WebSocket (``twisted.web.websocket``'s transport), once open.
        self.websocket: WebSocketTransport | None = None
        channel = request.channel
        # The HTTP channel's idle timer and producer were for HTTP: the
        # chat connection has its own join timeout and takes the TCP
        # connection's buffer signals itself (a transport has one producer).
        channel.setTimeout(None)
        channel.transport.unregisterProducer()
        # The HTTP connection was counted in at accept (muca.web.channel):
        # the chat connection takes its count over and releases it.
        self.admitted = channel.hand_over()

    def negotiationStarted(self, transport: WebSocketTransport) -> None:  # noqa: N802
        """The WebSocket's wire protocol is connected: cap its buffers."""
        _take_over_messages_and_pings(transport, self, self._max_frame)
        self.websocket = transport
        # The TCP connection under the WebSocket (its wire protocol's own
        # transport): fan-out bytes are framed for it already.
        self._start(transport.transport)  # type: ignore[attr-defined]

    def _register(self) -> None:
        assert self.websocket is not None
        self.websocket.attachProducer(self)

    def _unregister(self) -> None:
        assert self.websocket is not None
        self.websocket.detachProducer()

    def _lose(self) -> None:
        """Close with a WebSocket close frame, after what is buffered."""
        assert self.websocket is not None
        try:
            self.websocket.loseConnection()
        except LocalProtocolError:
            # The WebSocket is already closing (the peer sent its close).
            self._stream.loseConnection()

    def negotiationFinished(self) -> None:  # noqa: N802
        """The handshake's answer is written: nothing more to do."""

    def textMessageReceived(self, message: str) -> None:  # noqa: N802
        """One text message: one JSON object, handled as a TCP frame is."""
        if isinstance(message, TooLong):
            frame: Any = BadFrame(
                FRAME_TOO_LONG, f"message longer than {self._max_frame} bytes"
            )
        elif not message.isascii() and len(message.encode()) > self._max_frame:
            frame = BadFrame(
                FRAME_TOO_LONG, f"message longer than {self._max_frame} bytes"
            )
        else:
            frame = _decode(message)
        self.frames_received([frame])

    def bytesMessageReceived(self, data: bytes) -> None:  # noqa: N802
        """A binary message: not part of the protocol."""
        self.frames_received([_BINARY])

    def pongReceived(self, payload: bytes) -> None:  # noqa: N802
        """Not called: pongs are frames of the chat (see :class:`ControlFrames`)."""


def _decode(message: str) -> dict[str, Any] | BadFrame:
    """A text message as a command object, or why it is not one."""
    try:
        value = json.loads(message)
    except (ValueError, RecursionError):
        return _NOT_JSON
    if not isinstance(value, dict):
        return _NOT_AN_OBJECT
    return value
