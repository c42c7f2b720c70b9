"""A browser pointed at the chat port: its HTTP request is recognised by
its first bytes and answered with one line that names the browser client's
URL (the web listener), instead of a stream of protocol errors.

No MUCA peer can be taken for one: a native or original client's first
byte is ``{`` (or white space), a length-prefixed one's ``0x00``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REQUEST_LINE = re.compile(
    rb"(?:GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE|PRI) [!-~]"
)
_WILDCARD = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class BrowserClient:
    """Where the web listener serves the browser client: ``scheme``
    (``http`` or ``https``), the ``host`` it is named by (``None`` for a
    listener on every interface without a ``--web-host``) and ``port``."""

    scheme: str
    host: str | None
    port: int

    @classmethod
    def of(cls, secure: bool, bound: str, port: int, name: str | None) -> BrowserClient:
        """The browser client of a listener bound to ``bound``:``port``,
        named ``name`` (the first ``--web-host``) if given."""
        host = name or (None if bound in _WILDCARD else bound)
        return cls("https" if secure else "http", host, port)

    def url(self, reached: str = "localhost") -> str:
        """The page's URL; ``reached`` names a listener on every interface
        (the address a peer reached this machine by)."""
        host = self.host or reached
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}/"


def is_http_request(data: bytes) -> bool:
    """Whether the first bytes of a connection are an HTTP request line."""
    return _REQUEST_LINE.match(data) is not None


def http_reply(url: str | None) -> bytes:
    """The HTTP/1.0 answer to a request on the chat port: 400 and one line
    naming ``url`` (or saying there is no web listener)."""
    line = "This is a MUCA chat port, not a web page"
    if url is None:
        line += "; this server has no browser client."
    else:
        line += f": the browser client is at {url}"
    return (
        b"HTTP/1.0 400 Bad Request\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Connection: close\r\n\r\n" + line.encode() + b"\r\n"
    )
