"""The server under test: a real ``twistd -n muca`` process, and its accounting.

The benchmark never imports the server: it starts the twistd plugin service
in its own process on a free loopback port and reads that process's CPU time
and memory from ``/proc``, the kernel's own accounting.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_PORT_LINE = re.compile(r"ChatFactory starting on (\d+)")
_WEB_PORT_LINE = re.compile(r"Site starting on (\d+)")
_IRC_PORT_LINE = re.compile(r"muca: IRC on [\d.]+:(\d+)")
_TICKS = os.sysconf("SC_CLK_TCK")


class BenchFailure(Exception):
    """The benchmark found a wrong result (loss, duplicate, stray message) or
    could not run; the command line reports it and exits non-zero."""


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident memory of a process, in kB: now and peak."""

    rss_kb: int
    peak_kb: int


def _twistd_command() -> list[str]:
    """The twistd of this Python environment, as an argv prefix."""
    script = Path(sys.executable).with_name("twistd")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "twisted"]


class ServerProcess:
    """``twistd -n muca`` listening on a free loopback port.

    Use as a context manager: the process is started on entry and ended (by
    its own PID) on exit. ``port`` is read from the server's log line
    ``ChatFactory starting on PORT``, so port 0 never races.
    """

    def __init__(
        self,
        list_interval: float | None = None,
        extra_args=(),
        profile_path: str | None = None,
    ) -> None:
        self.list_interval = list_interval
        self.extra_args = list(extra_args)
        # Where py-spy writes the server's sampled stacks (collapsed format).
        self.profile_path = profile_path
        self.process: subprocess.Popen[bytes] | None = None
        self._profiler: subprocess.Popen[bytes] | None = None
        self.port = 0
        #: The web listener's port (the protocol over WebSocket at /ws).
        self.web_port = 0
        #: The IRC listener's port, when the arguments have ``--irc``.
        self.irc_port = 0
        self._dir: str | None = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        """The server's twistd log file."""
        assert self._dir is not None
        return Path(self._dir, "server.log")

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it listens."""
        self._dir = tempfile.mkdtemp(prefix="muca-bench-")
        args = [
            *_twistd_command(),
            "-n",
            "--pidfile=",
            f"--logfile={self.log_path}",
            "muca",
            # A listen queue deep enough for a storm of connects.
            "--listen",
            "tcp:0:interface=127.0.0.1:backlog=1024",
            "--web",
            "tcp:0:interface=127.0.0.1:backlog=1024",
            # Thousands of fast clients from one address: no abuse limits.
            "--rate-limit=0",
            "--max-per-address=0",
            "--max-connections=0",
        ]
        if self.list_interval is not None:
            args += ["--list-interval", repr(self.list_interval)]
        args += self.extra_args
        self.process = subprocess.Popen(
            args,
            cwd=self._dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(self._dir, "stderr.txt"), "wb"),  # noqa: SIM115
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchFailure(
                    f"the server exited with status {self.process.returncode}: "
                    + self._tail()
                )
            log = (
                self.log_path.read_text(errors="replace")
                if self.log_path.exists()
                else ""
            )
            match = _PORT_LINE.search(log)
            web = _WEB_PORT_LINE.search(log)
            irc = _IRC_PORT_LINE.search(log)
            if match and web and (irc or "--irc" not in self.extra_args):
                self.port = int(match.group(1))
                self.web_port = int(web.group(1))
                self.irc_port = int(irc.group(1)) if irc else 0
                if self.profile_path:
                    self._start_profiler()
                return
            time.sleep(0.05)
        raise BenchFailure(f"the server did not listen within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """End the server (SIGTERM, then SIGKILL) and remove its directory."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        profiler, self._profiler = self._profiler, None
        if profiler is not None:
            try:
                profiler.wait(timeout * 3)
            except subprocess.TimeoutExpired:
                profiler.kill()
                profiler.wait(timeout)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _start_profiler(self) -> None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self._profiler = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                self.profile_path,
                "--nonblocking",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def check_alive(self) -> None:
        """Raise :class:`BenchFailure` when the server has died."""
        if self.process is not None and self.process.poll() is not None:
            raise BenchFailure(
                f"the server died with status {self.process.returncode}: "
                + self._tail()
            )

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of proc(5), counted after the command name.
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def memory(self) -> Memory:
        """The server's resident memory now (VmRSS) and at its peak (VmHWM)."""
        values = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0])
        return Memory(values["VmRSS"], values["VmHWM"])

    def _tail(self) -> str:
        texts = []
        for name in ("stderr.txt", "server.log"):
            path = Path(self._dir or "", name)
            if path.exists():
                texts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(texts).strip() or "(no output)"

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
