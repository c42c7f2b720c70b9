"""A plain HTTP GET on loopback, for tests of what a web listener serves."""

from __future__ import annotations

import warnings
from typing import Any

from twisted.internet import reactor
from twisted.web.client import Agent, readBody


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
