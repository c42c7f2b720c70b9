"""The web listener's HTTP connections: counted against the chat server's
connection caps from accept, and held to a deadline per request.

A connection to the web listener costs a file descriptor as a chat
connection does, so it counts toward ``--max-connections`` and
``--max-per-address`` (the chat factory's own count, shared with the TCP
listeners) from the moment it is accepted; one over a cap is answered
``503`` at once and closed. When it becomes a WebSocket its count passes to
the chat connection on it (:meth:`CountedChannel.hand_over`), released when
that closes: never counted twice.

Twisted's HTTP idle timer restarts on every byte, so a request sent one
byte at a time would be held for ever. Here each request must arrive whole
(request line, headers and body) within ``--web-request-timeout`` seconds of
the connection's accept or of the previous response's end, bytes or no
bytes; past it the connection gets ``408`` and is closed. An idle
keep-alive connection is closed by the same deadline.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

#: Seconds a request may take to arrive whole (``--web-request-timeout``).
DEFAULT_REQUEST_TIMEOUT = 10.0

log = Logger()


def _answer(status: str, text: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection."""
    body = f"{text}\n".encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class CountedChannel(HTTPChannel):
    """An HTTP connection of the web listener (see the module's text).

    Its site (:class:`muca.web.gateway.WebSite`) names the chat factory
    (``chat``) whose count it shares and the ``request_timeout``.
    """

    def __init__(self) -> None:
        super().__init__()
        #: The peer's IP address (``None`` for a UNIX socket): the chat
        #: factory counts connections by it.
        self.address: str | None = None
        self._counted = False
        self._refused = False
        self._deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:  # noqa: N802
        """Count the connection in, or answer 503 and close it."""
        super().connectionMade()
        self.address = getattr(self.transport.getPeer(), "host", None)
        # The count itself, not the chat's admit: a server that is stopping
        # still answers /healthz (503) on a connection already accepted.
        refusal = self.factory.chat.counter.admit(self.address)
        if refusal is not None:
            log.info(
                "refused web connection from {peer}: {reason}",
                peer=self.address,
                reason=refusal,
            )
            self._refused = True
            self.transport.write(_answer("503 Service Unavailable", refusal))
            self.transport.loseConnection()
            return
        self._counted = True
        self._start_deadline()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        """Nothing is read from a refused connection."""
        if not self._refused:
            super().dataReceived(data)

    def allContentReceived(self) -> None:  # noqa: N802
        """The request is whole: its deadline is met."""
        self._stop_deadline()
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:  # noqa: N802
        """The response is written: the next request has its own deadline."""
        super().requestDone(request)
        if self.persistent and self._counted and not self._handlingRequest:
            self._start_deadline()

    def hand_over(self) -> bool:
        """The connection becomes a WebSocket: stop its deadline and pass
        its count on; True when it was counted (the chat connection that
        takes it over releases it)."""
        self._stop_deadline()
        counted, self._counted = self._counted, False
        return counted

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        """Count the connection out."""
        self._stop_deadline()
        if self._counted:
            self._counted = False
            self.factory.chat.counter.release(self.address)
        super().connectionLost(reason)

    def _start_deadline(self) -> None:
        self._stop_deadline()
        self._deadline = self.callLater(self.factory.request_timeout, self._late)

    def _stop_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        timeout = f"{self.factory.request_timeout:g}"
        log.info(
            "closing web connection from {peer}: no whole request within {timeout} s",
            peer=self.address,
            timeout=timeout,
        )
        self.transport.write(
            _answer("408 Request Timeout", f"no whole request within {timeout} s")
        )
        self.loseConnection()
        # Gone within HTTPChannel's abort timeout even if the peer does not
        # read (as its own idle timeout does; connectionLost cancels it).
        self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
