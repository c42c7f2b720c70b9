"""Helpers for the client and GUI tests: a loopback server and a recording observer."""

from __future__ import annotations

from typing import Any

from twisted.internet import endpoints, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from muca.client import ChatObserver, ReceivedMessage
from muca.messages import Peer
from muca.server import ChatFactory

#: Seconds a test waits for something expected before failing.
TIMEOUT = 5.0


async def start_chat_server(
    testcase: TestCase, description: str = "tcp:0:interface=127.0.0.1"
) -> tuple[int, ChatFactory]:
    """Listen with a real :class:`ChatFactory` on an OS-chosen loopback port."""
    factory = ChatFactory(list_interval=0)
    endpoint = endpoints.serverFromString(reactor, description)
    port = await endpoint.listen(factory)
    testcase.addCleanup(port.stopListening)
    return port.getHost().port, factory


async def wait_until(predicate: Any, timeout: float = TIMEOUT, what: str = "") -> None:
    """Let the reactor run until ``predicate()`` is true; fail after ``timeout``."""
    steps = int(timeout / 0.01)
    for _ in range(steps):
        if predicate():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError(f"timed out waiting for {what or predicate}")


class RecordingObserver(ChatObserver):
    """Records every event as ``(name, value)`` in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def joined(self) -> None:
        self.events.append(("joined", None))

    def refused(self, code: str, reason: str) -> None:
        self.events.append(("refused", (code, reason)))

    def peers_changed(self, peers: tuple[Peer, ...]) -> None:
        self.events.append(("peers", peers))

    def message_received(self, message: ReceivedMessage) -> None:
        self.events.append(("message", message))

    def server_error(self, code: str, reason: str) -> None:
        self.events.append(("error", (code, reason)))

    def connection_lost(self, reason: str, requested: bool) -> None:
        self.events.append(("lost", (reason, requested)))

    def of(self, name: str) -> list[Any]:
        """The values of every event with this name, in order."""
        return [value for kind, value in self.events if kind == name]

    async def next_of(self, name: str, count: int = 1) -> Any:
        """Wait until ``count`` events of this name exist; return the last."""
        await wait_until(lambda: len(self.of(name)) >= count, what=f"{name} event")
        return self.of(name)[count - 1]


async def settle(turns: int = 5) -> None:
    """Give the reactor a few turns (for checks that something did NOT happen)."""
    for _ in range(turns):
        await deferLater(reactor, 0.02, lambda: None)
