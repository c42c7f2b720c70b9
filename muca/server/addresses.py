"""How an address is named in logs and to users: one formatter for every
listener and connection."""

from __future__ import annotations

from typing import Any


def describe_address(address: Any) -> str:
    """How an address is named in logs: ``host:port`` for an IP address
    (``[host]:port`` for IPv6), the path for a UNIX socket, ``local``
    for one with neither (a socket pair)."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    name = getattr(address, "name", None)
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return str(name) if name else "local"
