"""``--workload logins``: Argon2id logins on a ``--auth db`` server while a
broadcast runs, against the same broadcast without logins, in one run.

Set-up (not measured): an SQLite database with an account for each
broadcast client (``u0`` …) and for each of ``logins`` login clients
(``l0`` …), written through the store's own accounts rows. Every account
has the same password and shares one Argon2id hash made with argon2-cffi's
defaults, the parameters the server hashes with: a login's verification
costs what it costs on any account, and the set-up costs one hash instead
of a thousand.

Measured: the broadcast (``senders`` of ``clients``, ``window`` in flight
each) for ``duration`` seconds without logins; then the same broadcast
again while ``concurrency`` login threads log in ``l0`` … one after
another, each connecting, sending a ``JOIN`` with ``PASS``, reading its
``ACK`` and closing; then the broadcast without logins once more. The
broadcast clients see each login client come and go: those ``PRESENCE``
lines are counted and taken out of what the broadcast checks, which is
otherwise as strict as ever.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import tempfile
import threading
import time
from array import array
from collections.abc import Callable

from argon2 import PasswordHasher

from bench.load import Client, Exchange, LoadGenerator
from bench.server import BenchFailure
from bench.workloads import Result, Settings, _fill_latency, _generator_cpu, _Run
from muca.service.admin import open_database
from muca.store import accounts as rows

#: Every account's password.
PASSWORD = "bench-password-1"
#: The start of a PRESENCE line (login clients joining and leaving).
_PRESENCE = b'{"CMD":"PRESENCE"'
#: Bytes a login client reads at most before its ACK.
_MAX_ANSWER = 1 << 20


def make_accounts(path: str, uids: list[str]) -> float:
    """An SQLite database at ``path`` with an account for each of ``uids``,
    all with :data:`PASSWORD`; return the seconds it took."""
    started = time.monotonic()
    encoded = PasswordHasher().hash(PASSWORD)
    now = int(time.time() * 1000)
    database = open_database(path, create=True)
    try:
        with database.transaction() as cursor:
            for uid in uids:
                rows.add_account(
                    cursor, database.dialect, rows.Account(uid, encoded, created=now)
                )
    finally:
        database.close()
    return time.monotonic() - started


def _password_join(index: int, presence: bool) -> bytes:
    caps = ',"CAPS":["presence-delta"]' if presence else ""
    return b'{"CMD":"JOIN","UN":"n%d","UID":"u%d","V":2%s,"PASS":"%s"}\n' % (
        index,
        index,
        caps.encode(),
        PASSWORD.encode(),
    )


class AccountsGenerator(LoadGenerator):
    """Broadcast clients that log in with :data:`PASSWORD`, and that drop
    (and count) the ``PRESENCE`` lines of others joining during a message
    phase."""

    def __init__(self, *args, **kwargs) -> None:
        self._filtering = False
        self._raw: Callable[[Client, bytes], None] | None = None
        self._wrapped: Callable[[Client, bytes], None] | None = None
        self.presence_lines = 0
        # Per client: the bytes after its last newline, kept through phases.
        self._partial: dict[int, bytes] = {}
        super().__init__(*args, **kwargs)

    @property
    def _handler(self) -> Callable[[Client, bytes], None]:
        return self._wrapped if self._filtering else self._raw  # type: ignore[return-value]

    @_handler.setter
    def _handler(self, handler: Callable[[Client, bytes], None]) -> None:
        self._raw = handler
        self._wrapped = self._without_presence(handler)

    def _join_frame(self, client: Client) -> bytes:
        return _password_join(client.index, client.presence)

    def exchange(self, *args, **kwargs) -> Exchange:
        """:meth:`LoadGenerator.exchange`, with PRESENCE lines taken out."""
        self._filtering = True
        try:
            return super().exchange(*args, **kwargs)
        finally:
            self._filtering = False

    def _without_presence(
        self, handler: Callable[[Client, bytes], None]
    ) -> Callable[[Client, bytes], None]:
        """``handler`` given whole lines only, PRESENCE lines counted and
        taken out."""
        partial = self._partial

        def on_data(client: Client, data: bytes) -> None:
            carry = partial.pop(client.fd, None)
            if carry:
                data = carry + data
            end = data.rfind(b"\n") + 1
            if end < len(data):
                partial[client.fd] = data[end:]
                data = data[:end]
            if _PRESENCE in data:
                kept = []
                for line in data.splitlines(keepends=True):
                    if line.startswith(_PRESENCE):
                        self.presence_lines += 1
                    else:
                        kept.append(line)
                data = b"".join(kept)
            if data:
                handler(client, data)

        return on_data


@dataclasses.dataclass(slots=True)
class _Logins:
    """What the login threads measured."""

    latencies_ns: array = dataclasses.field(default_factory=lambda: array("q"))
    failures: list[str] = dataclasses.field(default_factory=list)
    threads: list[threading.Thread] = dataclasses.field(default_factory=list)
    done: int = 0


def _log_in(port: int, index: int, timeout: float) -> None:
    """One login client: JOIN with the password, read until the ACK, close;
    raise :class:`BenchFailure` unless it is ``OKAY``."""
    frame = b'{"CMD":"JOIN","UN":"m%d","UID":"l%d","V":2,"PASS":"%s"}\n' % (
        index,
        index,
        PASSWORD.encode(),
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(frame)
        answer = b""
        while b"\n" not in answer:
            data = sock.recv(65536)
            if not data or len(answer) > _MAX_ANSWER:
                raise BenchFailure(f"login l{index}: no ACK but {answer[:200]!r}")
            answer += data
        line = answer.split(b"\n", 1)[0]
        if not line.startswith(b'{"CMD":"ACK"') or b'"TYPE":"OKAY"' not in line:
            raise BenchFailure(f"login l{index}: refused {line[:200]!r}")


def _run_logins(
    port: int, count: int, concurrency: int, timeout: float, limit: float
) -> _Logins:
    """Start ``count`` logins, ``concurrency`` at a time, each within
    ``timeout``, none begun after ``limit`` seconds."""
    measured = _Logins()
    lock = threading.Lock()
    next_index = [0]
    deadline = time.monotonic() + limit

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                if next_index[0] >= count or measured.failures:
                    return
                index = next_index[0]
                next_index[0] += 1
            started = time.monotonic_ns()
            try:
                _log_in(port, index, timeout)
            except (OSError, BenchFailure) as failure:
                with lock:
                    measured.failures.append(str(failure))
                return
            with lock:
                measured.latencies_ns.append(time.monotonic_ns() - started)
                measured.done += 1

    measured.threads = [
        threading.Thread(target=worker, daemon=True) for _ in range(concurrency)
    ]
    for thread in measured.threads:
        thread.start()
    return measured


def _broadcast_row(label: str, clients: int, senders: int, window: int) -> Result:
    return Result(f"logins broadcast w{window} {label}", clients, senders, window)


def logins(
    count: int,
    settings: Settings,
    clients: int = 100,
    senders: int = 20,
    window: int = 1,
    concurrency: int = 4,
) -> list[Result]:
    """The broadcast without logins, during ``count`` logins and after
    them (the same server and clients), and the logins' own row (latency
    columns: per login)."""
    senders = min(senders, clients)
    directory = tempfile.mkdtemp(prefix="muca-bench-logins-")
    try:
        path = os.path.join(directory, "accounts.db")
        uids = [f"u{i}" for i in range(clients)] + [f"l{i}" for i in range(count)]
        setup_s = make_accounts(path, uids)
        chosen = dataclasses.replace(
            settings,
            server_args=(*settings.server_args, "--auth", "db", "--db", path),
        )
        quiet = _broadcast_row("no logins", clients, senders, window)
        busy = _broadcast_row("with logins", clients, senders, window)
        after = _broadcast_row("after logins", clients, senders, window)
        row = Result("logins", count)
        cpu = _generator_cpu()
        with _Run(chosen, quiet, generator=AccountsGenerator) as run:
            run.join(quiet, clients, presence=True)
            quiet.notes.clear()
            run.exchange(
                quiet,
                run.generator.clients[:senders],
                False,
                window=window,
                duration=settings.duration,
            )
            _during_logins(run, busy, row, count, senders, window, concurrency)
            run.exchange(
                after,
                run.generator.clients[:senders],
                False,
                window=window,
                duration=settings.duration,
            )
        generator_cpu = _generator_cpu() - cpu
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    row.generator_cpu_s = generator_cpu
    row.notes.insert(
        0, f"set-up: {count + clients} accounts written in {setup_s:.2f} s"
    )
    before_p99 = quiet.latency_p99_ms or 0.0
    after_p99 = after.latency_p99_ms or 0.0
    busy_p99 = busy.latency_p99_ms or 0.0
    if before_p99 and after_p99:
        # Against both sides' mean: load from elsewhere on the machine that
        # grows or shrinks during the run falls on both alike.
        ratio = busy_p99 * 2 / (before_p99 + after_p99)
        verdict = "within" if ratio <= 2 else "OVER"
        row.notes.append(
            f"broadcast p99 {busy_p99:.2f} ms with logins against"
            f" {before_p99:.2f} ms before and {after_p99:.2f} ms after them:"
            f" {ratio:.2f}× their mean ({verdict} the 2× target)"
        )
    return [quiet, busy, after, row]


def _during_logins(
    run: _Run,
    busy: Result,
    row: Result,
    count: int,
    senders: int,
    window: int,
    concurrency: int,
) -> None:
    """The broadcast, in phases of at most a second, until the logins end."""
    server, generator = run.server, run.generator
    cpu = server.cpu_seconds()
    started = time.monotonic()
    limit = run.settings.timeout + count  # a second a login at most, at worst
    measured = _run_logins(server.port, count, concurrency, run.settings.timeout, limit)
    latencies = array("q")
    deliveries = messages = 0
    seconds = 0.0
    phases = 0
    while any(thread.is_alive() for thread in measured.threads):
        if time.monotonic() - started > limit:
            raise BenchFailure(f"logins: {measured.done} of {count} after {limit} s")
        phase = generator.exchange(
            generator.clients[:senders], False, window=window, duration=1.0
        )
        phases += 1
        latencies.extend(phase.latencies_ns)
        deliveries += phase.deliveries
        messages += phase.messages
        seconds += phase.seconds
    logins_s = time.monotonic() - started
    for thread in measured.threads:
        thread.join(run.settings.timeout)
    server_cpu = server.cpu_seconds() - cpu
    if measured.failures:
        raise BenchFailure(measured.failures[0])
    if measured.done != count:
        raise BenchFailure(f"logins: {measured.done} of {count} logged in")
    busy.server_cpu_s = server_cpu
    busy.messages = messages
    busy.deliveries = deliveries
    busy.deliveries_per_s = deliveries / seconds if seconds else None
    _fill_latency(busy, Exchange(deliveries, messages, seconds, latencies))
    busy.server_peak_rss_mb = server.memory().peak_kb / 1024
    busy.notes.append(
        f"{phases} broadcast phases during the logins;"
        f" {generator.presence_lines} PRESENCE lines of login clients set aside"
    )
    row.join_s = logins_s
    row.server_cpu_s = server_cpu
    row.server_peak_rss_mb = busy.server_peak_rss_mb
    _fill_latency(row, Exchange(0, count, logins_s, measured.latencies_ns))
    row.notes.append(
        f"{measured.done} of {count} logins OKAY in {logins_s:.2f} s:"
        f" {count / logins_s:.1f} logins/s, {concurrency} at a time;"
        f" {server_cpu * 1000 / count:.0f} ms server CPU a login"
        " (the broadcast's included); latency columns: connect to ACK"
    )
