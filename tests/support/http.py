"""A plain HTTP GET on loopback, for tests of what a web listener serves."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.web.client import Agent, readBody


async def http_get(port: int, path: str) -> tuple[Any, bytes]:
    """GET ``http://127.0.0.1:port/path``: the response and its body."""
    response = await Agent(reactor).request(
        b"GET", f"http://127.0.0.1:{port}{path}".encode()
    )
    return response, await readBody(response)
