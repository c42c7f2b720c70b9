"""Who may use the web listener's parts: which pages' origins may open the
chat WebSocket, and which addresses may read ``/metrics``.

The Origin rule. A browser sends the page's origin (scheme, host, port)
with every WebSocket handshake. It is allowed when it is one of the
``--web-origin`` origins, or when it is the listener itself: the scheme of
the connection (``http`` on a plain listener, ``https`` on a TLS one), the
port the connection came in on, and a host that is one of

* the IP address the connection came in on (for a wildcard bind, whichever
  address of this machine the browser used), or ``localhost`` when that
  address is a loopback one;
* a ``--web-host`` name.

The request's own ``Host`` header is never trusted for the Origin rule: a
DNS-rebinding page (``http://evil.example:40080`` made to resolve to this
server) sends its own origin, which no rule above allows.

The Host rule. Every request (the page, ``/healthz``, ``/metrics``, ``/ws``)
must name the listener in its ``Host`` header by one of the same hosts, or
by the host of a ``--web-origin``; any other name gets ``421 Misdirected
Request``. So a rebinding page cannot read even the static page or
``/metrics`` of a server on its visitor's machine.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from muca.server.limits import is_loopback

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Who may read ``/metrics`` unless ``--metrics-from`` says otherwise.
DEFAULT_METRICS_FROM = "127.0.0.0/8,::1"


def normalize_origin(origin: str) -> str:
    """An origin as browsers send it: lower case, no trailing slash."""
    return origin.strip().rstrip("/").lower()


def host_name(value: str) -> str:
    """A ``--web-host`` value as an Origin spells its host: a DNS name
    (ASCII, as browsers send it), or an IP address (``[::1]`` or ``::1``);
    ValueError for anything else."""
    name = value.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return _plain_ip(str(ipaddress.ip_address(name)))
    except ValueError:
        pass
    if not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?", name):
        raise ValueError(f"{value!r} is not a host name or an IP address")
    return name


def _origin_host(origin: str) -> str | None:
    try:
        return urlsplit(origin).hostname
    except ValueError:
        return None


def _plain_ip(host: str) -> str:
    """An IP address in one spelling (IPv4-mapped IPv6 as IPv4); other
    names lower case."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host.lower()
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


class OriginPolicy:
    """The Origin rule (see the module's text) for one web site."""

    def __init__(self, origins: Iterable[str] = (), hosts: Iterable[str] = ()) -> None:
        #: Whole origins allowed as they are (``--web-origin``).
        self.origins = {normalize_origin(origin) for origin in origins}
        #: Names the listener answers to (``--web-host``).
        self.hosts = {host_name(host) for host in hosts}
        #: The hosts of those origins, which a reverse proxy may send as Host.
        self.origin_hosts = {
            _plain_ip(name) for name in map(_origin_host, self.origins) if name
        }

    def allows(self, origin: str, secure: bool, local_host: str, port: int) -> bool:
        """Whether a page of ``origin`` may use the WebSocket of a connection
        that came in on ``local_host``:``port`` (over TLS when ``secure``)."""
        normal = normalize_origin(origin)
        if normal in self.origins:
            return True
        try:
            parts = urlsplit(normal)
            origin_port = parts.port
        except ValueError:
            return False
        scheme = "https" if secure else "http"
        if parts.scheme != scheme or parts.hostname is None:
            return False
        if (origin_port or (443 if secure else 80)) != port:
            return False
        host = _plain_ip(parts.hostname)
        own = _plain_ip(local_host)
        return (
            host == own
            or host in self.hosts
            or (host == "localhost" and is_loopback(own))
        )

    def answers_to(self, host: str, local_host: str) -> bool:
        """Whether a request whose ``Host`` header is ``host`` (``name`` or
        ``name:port``) names this listener reached at ``local_host``: its
        address, ``localhost`` on a loopback one, a ``--web-host``, or the
        host of a ``--web-origin`` (a reverse proxy passing its own name)."""
        try:
            name = urlsplit(f"//{host.strip().lower()}").hostname
        except ValueError:
            return False
        if name is None:
            return False
        name = _plain_ip(name)
        own = _plain_ip(local_host)
        return (
            name == own
            or name in self.hosts
            or (name == "localhost" and is_loopback(own))
            or name in self.origin_hosts
        )


def parse_networks(text: str) -> list[IPNetwork]:
    """``10.0.0.0/8,192.0.2.7``: addresses and networks; ValueError names a
    wrong one."""
    networks = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    if not networks:
        raise ValueError(f"{text!r} names no address")
    return networks


class AddressList:
    """The peers allowed to read ``/metrics``: addresses and networks."""

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks = list(networks)

    def allows(self, address: str | None) -> bool:
        """Whether a peer at ``address`` (None: a UNIX socket, this machine)
        is allowed."""
        if address is None:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        ip = getattr(ip, "ipv4_mapped", None) or ip
        return any(ip in network for network in self.networks)
