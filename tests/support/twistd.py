"""Helpers for tests that run a real ``twistd -n muca`` process: start it on
an OS-chosen loopback port, read its peak memory, and open many loopback
connections to it."""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ProcessTerminated
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

#: Seconds a test waits for something expected before failing.
WAIT = 30.0
# twistd as its console script runs it, under this interpreter.
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
PROCESS_TIMEOUT = 60


def fresh_directory(testcase: SynchronousTestCase) -> str:
    """A new empty directory, removed by the test's cleanup.

    Not ``TestCase.mktemp``: under pytest that writes into the checkout.
    """
    path = tempfile.mkdtemp(prefix="muca-test-")
    testcase.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


class TwistdProcess(ProcessProtocol):
    """Collects a twistd's output; fires when a pattern shows and when it ends."""

    def __init__(self) -> None:
        #: Everything it wrote, stdout and stderr; ``errors``: stderr alone.
        self.output = ""
        self.errors = ""
        self.reason: Failure | None = None
        self._ended: list[defer.Deferred[Failure]] = []
        self._watch: tuple[re.Pattern[str], defer.Deferred[re.Match[str]]] | None = None

    def wait_for(self, pattern: str) -> defer.Deferred:
        """Fire with the first match of ``pattern`` in the output."""
        found: defer.Deferred[re.Match[str]] = defer.Deferred()
        self._watch = (re.compile(pattern), found)
        self._check()
        return found.addTimeout(PROCESS_TIMEOUT, reactor)

    def ended(self, timeout: float = PROCESS_TIMEOUT) -> defer.Deferred:
        """Fire with ``[reason]``: why the process ended, as a value."""
        if self.reason is not None:
            return defer.succeed([self.reason])
        done: defer.Deferred[Failure] = defer.Deferred()
        self._ended.append(done)
        return done.addTimeout(timeout, reactor)

    def outReceived(self, data: bytes) -> None:
        self.output += data.decode("utf-8", "replace")
        self._check()

    def errReceived(self, data: bytes) -> None:
        self.errors += data.decode("utf-8", "replace")
        self.outReceived(data)

    def processEnded(self, reason: Failure) -> None:
        self.reason = reason
        for done in self._ended:
            if not done.called:
                # Wrapped in a list: a Failure given to callback() would errback.
                done.callback([reason])
        if self._watch is not None and not self._watch[1].called:
            self._watch[1].errback(reason)

    def _check(self) -> None:
        if self._watch is not None:
            pattern, found = self._watch
            match = pattern.search(self.output)
            if match and not found.called:
                self._watch = None
                found.callback(match)


def process_pid(process: TwistdProcess) -> int:
    """The PID of a process this test started."""
    return process.transport.pid


class Twistd:
    """A running ``twistd -n muca``: its process protocol, PID and port."""

    def __init__(self, process: TwistdProcess, transport: Any, port: int) -> None:
        self.process = process
        self.transport = transport
        self.port = port

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.transport.pid

    def status(self, field: str) -> int:
        """A ``kB`` figure of ``/proc/PID/status`` (e.g. ``VmHWM``), in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def terminate(self) -> None:
        """Send SIGTERM to the server (by its own PID)."""
        os.kill(self.pid, signal.SIGTERM)


async def start_twistd(testcase: TestCase, *args: str) -> Twistd:
    """Start ``twistd -n muca --listen tcp:0:interface=127.0.0.1 ARGS`` (and
    ``--web none`` unless ARGS has a ``--web``) and wait until it listens;
    the test's cleanup kills it if it still runs."""
    web = () if any(arg.startswith("--web") for arg in args) else ("--web", "none")
    process, transport = spawn_twistd(
        testcase, "--listen", "tcp:0:interface=127.0.0.1:backlog=1024", *web, *args
    )
    match = await process.wait_for(r"muca: listening on 127\.0\.0\.1:(\d+)")
    return Twistd(process, transport, int(match.group(1)))


def spawn_twistd(testcase: TestCase, *args: str) -> tuple[TwistdProcess, Any]:
    """Start ``twistd -n muca ARGS`` in a fresh directory; the test's cleanup
    kills it if it still runs."""
    process = TwistdProcess()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [*TWISTD, "-n", "--pidfile=", "muca", *args]
    transport = reactor.spawnProcess(
        process, TWISTD[0], argv, env=env, path=fresh_directory(testcase)
    )

    async def reap() -> None:
        if process.reason is None:
            transport.signalProcess("KILL")
            await process.ended()

    testcase.addCleanup(reap)
    return process, transport


async def refused_start(testcase: TestCase, *args: str) -> str:
    """Run ``twistd -n muca ARGS``, which must end before listening, without
    a traceback, with a non-zero status and one line on stderr (twistd's own
    go to its log on stdout); return that line."""
    process, _ = spawn_twistd(testcase, "--port", "0", "--web", "none", *args)
    (reason,) = await process.ended()
    testcase.assertIsInstance(reason.value, ProcessTerminated)
    testcase.assertNotEqual(reason.value.exitCode, 0)
    testcase.assertNotIn("listening on", process.output)
    testcase.assertNotIn("Traceback", process.output)
    lines = process.errors.splitlines()
    testcase.assertEqual(len(lines), 1, process.output)
    return lines[0]


def raise_open_file_limit(testcase: TestCase, wanted: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE to ``wanted`` (at most the hard
    limit) until the test ends; skip the test if that is not enough."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if new < wanted:
        testcase.skipTest(f"open file limit {hard} is below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    testcase.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))


class CountingClient(Protocol):
    """A loopback client that joins, then only counts what it receives.

    ``acked`` fires when its ``ACK`` arrives (with the ACK line; with
    ``None`` if the connection closes first), ``closed`` when the connection
    ends. ``lines`` holds every complete line received
    when ``keep`` is set; otherwise only counts are kept.
    """

    def __init__(self, join: bytes | None = None, keep: bool = False) -> None:
        self.join = join
        self.keep = keep
        self.acked: defer.Deferred[bytes | None] = defer.Deferred()
        self.closed: defer.Deferred[None] = defer.Deferred()
        self.received = 0
        self.lines: list[bytes] = []
        self.messages = 0
        self._tail = b""

    def connectionMade(self) -> None:
        if self.join is not None:
            self.transport.write(self.join)

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        *lines, self._tail = (self._tail + data).split(b"\n")
        for line in lines:
            if not self.acked.called and line.startswith(b'{"CMD":"ACK"'):
                self.acked.callback(line)
            if line.startswith(b'{"CMD":"MSG"'):
                self.messages += 1
            if self.keep:
                self.lines.append(line)

    def connectionLost(self, reason: Failure) -> None:
        if not self.acked.called:
            self.acked.callback(None)
        self.closed.callback(None)


async def open_clients(
    testcase: TestCase, port: int, joins: list[bytes | None], batch: int = 100
) -> list[CountingClient]:
    """Connect one :class:`CountingClient` per entry of ``joins`` (``batch``
    at a time); the test's cleanup closes every one still open."""
    clients: list[CountingClient] = []

    async def close_all() -> None:
        for client in clients:
            if client.transport is not None and not client.closed.called:
                client.transport.abortConnection()
        await defer.gatherResults([c.closed for c in clients])

    testcase.addCleanup(close_all)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=WAIT)
    for start in range(0, len(joins), batch):
        connecting = [
            connectProtocol(endpoint, CountingClient(join))
            for join in joins[start : start + batch]
        ]
        clients += await defer.gatherResults(connecting)
    return clients
