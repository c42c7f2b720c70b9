"""A private PostgreSQL server for the tests: one per test process, started
on first use and stopped when the process exits; a fresh database per test.

Runs the Debian binaries in /usr/lib/postgresql/*/bin.  initdb and postgres
refuse to run as root, so as root they run as the ``postgres`` OS user.  The
server listens on 127.0.0.1 on a free port, trusts every local connection
and has fsync off: it holds only throw-away test data.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import psycopg
from twisted.trial.unittest import TestCase

#: The superuser initdb creates; tests connect as it.
SUPERUSER = "muca"


@dataclass(frozen=True)
class PostgresServer:
    """A running private server: where it listens and its postmaster's pid."""

    host: str
    port: int
    pid: int
    base: str

    def conninfo(self, dbname: str = "postgres") -> str:
        """A libpq key=value string for ``dbname`` on this server."""
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname={dbname}"

    def url(self, dbname: str = "postgres") -> str:
        """A postgresql:// URL for ``dbname`` on this server."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{dbname}"


_server: PostgresServer | None = None
_names = itertools.count(1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise RuntimeError(
        "PostgreSQL server binaries not found: install the Debian package "
        "'postgresql' (scripts/test does)"
    )


def _as_server_user() -> list[str]:
    # The server binaries exit at once when run as root.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(command: list[str]) -> None:
    done = subprocess.run(
        _as_server_user() + command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{done.stdout}")


def postgres_server() -> PostgresServer:
    """The process's PostgreSQL server, started on the first call."""
    global _server
    if _server is None:
        _server = _start()
        atexit.register(_stop, _server)
    return _server


def _start() -> PostgresServer:
    bindir = _bindir()
    base = tempfile.mkdtemp(prefix="muca-pg-")
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    data = os.path.join(base, "data")
    _run(
        [
            os.path.join(bindir, "initdb"),
            "-D",
            data,
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )
    port = free_port()
    _run(
        [
            os.path.join(bindir, "pg_ctl"),
            "-D",
            data,
            "-l",
            os.path.join(base, "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ]
    )
    with open(os.path.join(data, "postmaster.pid")) as pidfile:
        pid = int(pidfile.readline())
    return PostgresServer("127.0.0.1", port, pid, base)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(server: PostgresServer) -> None:
    """Stop the server by its pid (fast shutdown, then kill) and delete it."""
    try:
        os.kill(server.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while _alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(server.pid):
        os.kill(server.pid, signal.SIGKILL)
    shutil.rmtree(server.base, ignore_errors=True)


def fresh_database(testcase: TestCase) -> str:
    """Create an empty database for ``testcase``, dropped when it ends;
    return its libpq conninfo."""
    server = postgres_server()
    name = f"test_{os.getpid()}_{next(_names)}"
    with psycopg.connect(server.conninfo(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(server.conninfo(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    testcase.addCleanup(drop)
    return server.conninfo(name)


def private_server(testcase: TestCase) -> PostgresServer:
    """A PostgreSQL server of this test's own (one it may stop and start
    again), stopped and deleted by the test's cleanup."""
    server = _start()
    testcase.addCleanup(_stop_any, server)
    return server


def _data(server: PostgresServer) -> str:
    return os.path.join(server.base, "data")


def stop(server: PostgresServer) -> None:
    """Stop ``server`` (fast shutdown: connections are cut), and wait."""
    _run(
        [
            os.path.join(_bindir(), "pg_ctl"),
            "-D",
            _data(server),
            "-m",
            "fast",
            "-w",
            "stop",
        ]
    )


def start(server: PostgresServer) -> None:
    """Start a stopped ``server`` again on its port, and wait."""
    _run(
        [
            os.path.join(_bindir(), "pg_ctl"),
            "-D",
            _data(server),
            "-l",
            os.path.join(server.base, "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {server.port} -k {server.base} -c listen_addresses=127.0.0.1"
            " -c fsync=off",
            "start",
        ]
    )


def _stop_any(server: PostgresServer) -> None:
    """Stop ``server`` whatever its postmaster's pid is now, and delete it."""
    pidfile = os.path.join(_data(server), "postmaster.pid")
    if os.path.exists(pidfile):
        with open(pidfile) as opened:
            pid = int(opened.readline())
        _stop(PostgresServer(server.host, server.port, pid, server.base))
    else:
        shutil.rmtree(server.base, ignore_errors=True)
