"""The cluster side of the benchmark: a private ``redis-server`` and several
``twistd -n muca --cluster`` nodes that the workloads treat as one server."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

from bench.server import BenchFailure, Memory, ServerProcess

_JOINED = re.compile(r"cluster: node \w+ joined")
_TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class RedisProcess:
    """``redis-server`` on a free loopback port, memory only; its CPU time
    is read from ``/proc/PID/stat``."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``--cluster`` URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it accepts connections."""
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
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise BenchFailure(f"redis-server did not start on port {self.port}")

    def cpu_seconds(self) -> float:
        """User plus system CPU time Redis has used so far."""
        assert self.process is not None
        return _cpu_seconds(self.process.pid)

    def stop(self) -> None:
        """End it by its PID."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


class Cluster:
    """``count`` nodes on one Redis, with the figures of a single server:
    CPU is their sum, peak memory the largest node's."""

    def __init__(
        self,
        count: int,
        list_interval: float | None,
        extra_args=(),
        profile_path: str | None = None,
    ) -> None:
        """``profile_path``: record each node with py-spy, node N's stacks
        in that path with ``-nodeN`` before its extension."""
        self.redis = RedisProcess()
        stem, extension = os.path.splitext(profile_path or "")
        self.nodes = [
            ServerProcess(
                list_interval,
                [*extra_args, "--cluster", self.redis.url, "--db", "none"],
                f"{stem}-node{index + 1}{extension}" if profile_path else None,
            )
            for index in range(count)
        ]

    @property
    def ports(self) -> list[int]:
        """Every node's port."""
        return [node.port for node in self.nodes]

    @property
    def port(self) -> int:
        """The first node's port."""
        return self.nodes[0].port

    def start(self, timeout: float = 30.0) -> None:
        """Start Redis, then the nodes; wait until each has joined."""
        self.redis.start()
        for node in self.nodes:
            node.start(timeout)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while not _JOINED.search(node.log_path.read_text(errors="replace")):
                node.check_alive()
                if time.monotonic() > deadline:
                    raise BenchFailure("a node did not join the cluster in time")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the nodes, then Redis."""
        try:
            for node in self.nodes:
                node.stop()
        finally:
            self.redis.stop()

    def check_alive(self) -> None:
        """Raise :class:`BenchFailure` when a node has died."""
        for node in self.nodes:
            node.check_alive()

    def cpu_seconds(self) -> float:
        """The nodes' CPU time, summed."""
        return sum(node.cpu_seconds() for node in self.nodes)

    def node_cpu_seconds(self) -> list[float]:
        """Each node's CPU time."""
        return [node.cpu_seconds() for node in self.nodes]

    def memory(self) -> Memory:
        """Resident memory summed; peak: the largest node's."""
        figures = [node.memory() for node in self.nodes]
        return Memory(sum(m.rss_kb for m in figures), max(m.peak_kb for m in figures))
