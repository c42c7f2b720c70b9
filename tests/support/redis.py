"""A private ``redis-server`` for cluster tests: started on a free loopback
port with no persistence, stopped by its PID at the test's cleanup."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

#: Seconds redis-server gets to start answering.
START_WAIT = 10.0


def free_port() -> int:
    """A loopback TCP port nobody listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process, memory only, on ``127.0.0.1:port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``--cluster`` URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        """Start it (again, empty) and wait until it answers PING."""
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            if self.command("PING") == "+PONG":
                return
            time.sleep(0.05)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def command(self, *words: str) -> str | None:
        """Send one inline command; its first reply line, or None if down."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1.0) as sock:
                sock.sendall(" ".join(words).encode() + b"\r\n")
                return sock.recv(65536).split(b"\r\n", 1)[0].decode()
        except OSError:
            return None

    def kill(self) -> None:
        """SIGKILL it (its data goes with it) and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        os.kill(self.pid, signal.SIGCONT)

    def cpu_seconds(self) -> float:
        """User + system CPU the server used, from ``/proc/PID/stat``."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_redis(testcase: SynchronousTestCase) -> RedisServer:
    """A fresh private redis-server for this test, killed at its cleanup."""
    server = RedisServer(free_port())
    server.start()

    def stop() -> None:
        # A paused server would ignore SIGTERM; SIGKILL works either way.
        server.kill()

    testcase.addCleanup(stop)
    return server
