"""The web listener's site: the browser client at ``/``, the chat protocol
over WebSocket at ``/ws``, ``/healthz`` and ``/metrics``.

Every WebSocket connection is a :class:`muca.web.peer.WebSocketPeer`, a
front-end of the same chat factory as the TCP listeners: one room.
Every HTTP connection is a :class:`muca.web.channel.CountedChannel`, counted
with the chat connections; who may use ``/ws`` and ``/metrics`` is decided
in :mod:`muca.web.access`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from twisted.logger import Logger
from twisted.web import http, pages, resource, static
from twisted.web.server import Request, Site
from twisted.web.websocket import WebSocketResource

from muca.web.access import (
    DEFAULT_METRICS_FROM,
    AddressList,
    IPNetwork,
    OriginPolicy,
    parse_networks,
)
from muca.web.channel import DEFAULT_REQUEST_TIMEOUT, CountedChannel
from muca.web.peer import WebSocketPeer

#: The browser client's files, shipped in the package.
STATIC = Path(__file__).resolve().parent / "static"

#: Nothing from another site, no inline script or style, never in a frame;
#: the WebSocket may go only to the page's own host and port ('self' covers
#: ws: and wss: there).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'"
)

#: Seconds a browser may use a script, style or image without asking again;
#: short, so that an upgraded server's page is not mixed with old modules
#: for long. The page itself is always revalidated.
ASSET_MAX_AGE = 60

#: RFC 9110's status for a request naming a host this server is not.
MISDIRECTED_REQUEST = 421

log = Logger()


def _security_headers(request: Request) -> None:
    request.setHeader(b"x-content-type-options", b"nosniff")


class StaticFiles(static.File):
    """The browser client's files, with caching and security headers."""

    def directoryListing(self) -> resource.Resource:  # noqa: N802
        """No listing of the package's files."""
        return resource.NoResource("File not found.")

    def render(self, request: Request) -> bytes | int:
        """Serve the file with its Content-Security-Policy and cache rules."""
        _security_headers(request)
        request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY)
        if self.isfile():
            if self.basename().endswith(".html"):
                # Asked again every time (a 304 when unchanged), so that a
                # new version of the page shows at the next load.
                request.setHeader(b"cache-control", b"no-cache")
            else:
                request.setHeader(b"cache-control", f"max-age={ASSET_MAX_AGE}")
            size, modified = self.getsize(), self.getModificationTime()
            etag = f'W/"{size:x}-{int(modified * 1000):x}"'.encode("ascii")
            if request.setETag(etag) is http.CACHED:
                return b""
        return super().render(request)


class WebSocketGateway(WebSocketResource):
    """``/ws``: the chat protocol over WebSocket, for pages of allowed origins.

    A browser sends the page's ``Origin`` with the handshake; one the
    :class:`~muca.web.access.OriginPolicy` does not allow is refused with
    403, so that another page a user opens (another site, or one that
    rebinds its name to this server) cannot chat in their name. No
    ``Origin`` at all (not a browser) is allowed.
    """

    def __init__(self, chat: Any, policy: OriginPolicy) -> None:
        super().__init__(_PeerFactory(chat))
        self.chat = chat
        self.policy = policy

    def render_GET(self, request: Request) -> bytes | int:  # noqa: N802
        """Check the handshake's ``Origin``, then upgrade to a WebSocket."""
        _security_headers(request)
        origin = request.getHeader(b"origin")
        if origin is not None and not self.allows(origin.decode("latin-1"), request):
            log.info(
                "refused a WebSocket from {peer}: origin {origin!r} not allowed"
                " (see --web-host, --web-origin)",
                peer=request.getClientAddress(),
                origin=origin,
            )
            request.setResponseCode(http.FORBIDDEN)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"this page's origin may not use the chat\n"
        if self.chat.stopping:
            # Its chat connection would not be among those the shutdown closes.
            request.setResponseCode(http.SERVICE_UNAVAILABLE)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"the server is shutting down\n"
        return super().render_GET(request)

    def allows(self, origin: str, request: Request) -> bool:
        """Whether a page of ``origin`` may open a WebSocket on the
        connection of ``request``."""
        local = request.getHost()
        return self.policy.allows(
            origin,
            request.isSecure(),
            getattr(local, "host", ""),
            getattr(local, "port", 0),
        )


class _PeerFactory:
    """Builds the peer of each accepted WebSocket handshake."""

    def __init__(self, chat: Any) -> None:
        self.chat = chat

    def buildProtocol(self, request: Request) -> WebSocketPeer:  # noqa: N802
        """A chat peer for this request's connection."""
        return WebSocketPeer(self.chat, request)


class Health(resource.Resource):
    """``/healthz``: 200 while the server accepts joins; 503 with the reason
    (``shutting down``, ``cluster: Redis unreachable``, ``store: ...``)
    while it would refuse or hold one."""

    isLeaf = True

    def __init__(self, chat: Any) -> None:
        super().__init__()
        self.chat = chat

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        """``ok``, or why not."""
        _plain(request)
        reason = self.chat.refusing_joins()
        if reason is not None:
            request.setResponseCode(http.SERVICE_UNAVAILABLE)
            return f"{reason}\n".encode()
        return b"ok\n"


class Metrics(resource.Resource):
    """``/metrics``: the server's figures in Prometheus' text format, for
    the peers ``allowed`` (``--metrics-from``; loopback by default); 403
    for the others.

    Written by hand rather than with ``prometheus-client``: a handful of
    figures, every one read from the server's own state when scraped, needs
    no registry, no metric objects to keep in step, and no dependency.
    """

    isLeaf = True

    def __init__(self, chat: Any, allowed: AddressList) -> None:
        super().__init__()
        self.chat = chat
        self.allowed = allowed

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        """The figures, one sample a line."""
        peer = getattr(request.getClientAddress(), "host", None)
        if not self.allowed.allows(peer):
            _plain(request)
            request.setResponseCode(http.FORBIDDEN)
            return f"/metrics is not served to {peer} (see --metrics-from)\n".encode()
        _plain(request, b"text/plain; version=0.0.4; charset=utf-8")
        return metrics_text(self.chat).encode("utf-8")


def metrics_text(chat: Any) -> str:
    """The chat factory's figures in Prometheus' text exposition format."""
    websocket = sum(1 for c in list(chat.connections) if isinstance(c, WebSocketPeer))
    tcp = len(chat.connections) - websocket
    counters = chat.counters
    rows = [
        ("members", "gauge", "Users in the chat room.", [("", len(chat.room))]),
        (
            "connections",
            "gauge",
            "Open connections, joined or not, by transport.",
            [('{transport="tcp"}', tcp), ('{transport="websocket"}', websocket)],
        ),
        (
            "messages_accepted_total",
            "counter",
            "SENDs accepted for at least one recipient.",
            [("", counters.accepted)],
        ),
        (
            "messages_delivered_total",
            "counter",
            "Message copies delivered to recipients on this server.",
            [("", counters.delivered)],
        ),
        (
            "bytes_out_total",
            "counter",
            "Bytes written to the connections.",
            [("", counters.bytes_out)],
        ),
        (
            "slow_consumers_total",
            "counter",
            "Connections dropped for not reading what was sent to them.",
            [("", counters.slow_consumers)],
        ),
    ]
    lines = []
    for name, kind, text, samples in rows:
        lines += [f"# HELP muca_{name} {text}", f"# TYPE muca_{name} {kind}"]
        lines += [f"muca_{name}{labels} {value}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def _plain(
    request: Request, content_type: bytes = b"text/plain; charset=utf-8"
) -> None:
    _security_headers(request)
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"cache-control", b"no-store")


class WebSite(Site):
    """The web listener's site: its connections are
    :class:`~muca.web.channel.CountedChannel` s of the chat factory
    ``chat``, each request due within ``request_timeout`` seconds."""

    protocol = CountedChannel

    def __init__(
        self,
        root: resource.Resource,
        chat: Any,
        request_timeout: float,
        policy: OriginPolicy,
    ) -> None:
        super().__init__(root)
        self.chat = chat
        self.request_timeout = request_timeout
        self.policy = policy

    def getResourceFor(self, request: Request) -> resource.IResource:  # noqa: N802
        """The resource for ``request``, or ``421 Misdirected Request`` when
        its ``Host`` names another server (the Host rule of
        :mod:`muca.web.access`: a DNS-rebinding page)."""
        host = request.getHeader(b"host")
        if host is not None and not self.policy.answers_to(
            host.decode("latin-1"), request.getHost().host
        ):
            return pages.errorPage(
                MISDIRECTED_REQUEST,
                "Misdirected Request",
                "This server does not answer to that name (see --web-host).",
            )
        return super().getResourceFor(request)


def make_site(
    chat: Any,
    origins: Iterable[str] = (),
    hosts: Iterable[str] = (),
    metrics_from: Iterable[IPNetwork] = (),
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
) -> WebSite:
    """The web listener's site for a chat factory: ``origins`` are the
    pages' origins allowed besides the listener's own, ``hosts`` the names
    it answers to besides its addresses (see :mod:`muca.web.access`),
    ``metrics_from`` the networks that may read ``/metrics`` (none given:
    loopback)."""
    root = StaticFiles(str(STATIC))
    policy = OriginPolicy(origins, hosts)
    root.putChild(b"ws", WebSocketGateway(chat, policy))
    root.putChild(b"healthz", Health(chat))
    allowed = list(metrics_from) or parse_networks(DEFAULT_METRICS_FROM)
    root.putChild(b"metrics", Metrics(chat, AddressList(allowed)))
    return WebSite(root, chat, request_timeout, policy)
