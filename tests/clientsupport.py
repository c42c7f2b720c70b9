"""Helpers for the client and GUI tests: a loopback server and a recording observer."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from typing import Any

from twisted.internet import endpoints, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase

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


_xvfb: tuple[subprocess.Popen[bytes], str] | None = None


def start_display(testcase: TestCase) -> str:
    """The X display for GUI tests: ``$DISPLAY``, or an Xvfb shared by the process.

    One Xvfb serves every test of a process: Tk keeps its connection to a
    display until the process ends, and Xlib ends the process when that
    connection breaks, so the server cannot be stopped between tests.
    ``-terminate`` makes Xvfb exit by itself once the test process is gone.
    Skips the test only when Xvfb cannot be started outside CI; under CI
    (``$CI`` set) that is a failure, since scripts/test installs Xvfb.
    """
    global _xvfb
    display = os.environ.get("DISPLAY")
    if display:
        return display
    if _xvfb is not None and _xvfb[0].poll() is None:
        return _xvfb[1]
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        _no_display(testcase, "Xvfb is not installed (scripts/test installs it)")
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            [xvfb, "-displayfd", str(write_end), "-screen", "0", "1320x1000x24"]
            + ["-nolisten", "tcp", "-terminate"],
            pass_fds=[write_end],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(write_end)
    number = b""
    deadline = time.monotonic() + 10
    try:
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.1)
            if ready:
                chunk = os.read(read_end, 16)
                if not chunk:
                    break
                number += chunk
    finally:
        os.close(read_end)
    if not number.strip().isdigit():
        _stop_process(process)
        _no_display(testcase, f"Xvfb did not start (exit status {process.poll()})")
    _xvfb = (process, f":{number.strip().decode()}")
    return _xvfb[1]


def _no_display(testcase: TestCase, reason: str) -> None:
    if os.environ.get("CI"):
        testcase.fail(f"GUI tests need a display under CI: {reason}")
    raise SkipTest(f"no X display: {reason}")


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
