"""The memory attacks of one client, replayed against a real server: the
peak memory of each beside a quiet server's, in the same run.

- quiet: a server with one joined client, doing nothing;
- pings: a WebSocket client that pings as fast as it can and never reads;
- replays: clients that join with ``SINCE: 0`` over a history of large
  messages and never read;
- slow readers: clients that never read while a sender broadcasts large
  messages to them.

Plain blocking sockets with small receive buffers, each attack bounded in
time; every server is a fresh ``twistd -n muca`` (``bench.server``).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

from wsproto import ConnectionType, WSConnection
from wsproto.events import Ping, Request

from bench.server import ServerProcess
from bench.workloads import Result, Settings

#: Peak memory an attack may add to a quiet server's.
TARGET_MB = 100.0
#: Text of one large message.
LARGE = 60_000


def _join(nickname: str, **extra: object) -> bytes:
    obj = {"CMD": "JOIN", "UN": nickname, "UID": f"{nickname.lower()}@bench", "V": 2}
    return json.dumps({**obj, **extra}).encode() + b"\n"


def _send(text: str, sender: str, to: list[str] | None = None) -> bytes:
    obj = {"CMD": "SEND", "MSG": text, "TO": to or [], "FROM": f"{sender}@bench"}
    return json.dumps(obj).encode() + b"\n"


def _connect(port: int, first: bytes, read_acks: bool = False) -> socket.socket:
    """A client with a small receive buffer that sends ``first``."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(first)
    return sock


def _peak_mb(server: ServerProcess) -> float:
    return server.memory().peak_kb / 1024


def _row(name: str, clients: int, peak: float, quiet: float | None) -> Result:
    result = Result(workload=name, clients=clients, server_peak_rss_mb=peak)
    if quiet is not None:
        above = peak - quiet
        verdict = "within" if above <= TARGET_MB else "OVER"
        result.notes.append(
            f"peak {peak:.1f} MB, {above:.1f} MB above the quiet server's"
            f" {quiet:.1f} MB: {verdict} the {TARGET_MB:.0f} MB target"
        )
    return result


def _dropped(server: ServerProcess) -> int:
    return server.log_path.read_text(errors="replace").count("slow consumer")


def _wait(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)


def quiet(settings: Settings) -> float:
    """The peak memory of a server with one client that does nothing."""
    with ServerProcess(extra_args=settings.server_args) as server:
        sock = _connect(server.port, _join("Quiet"))
        time.sleep(settings.duration)
        peak = _peak_mb(server)
        sock.close()
    return peak


def pings(seconds: float, settings: Settings, quiet_mb: float | None) -> Result:
    """One WebSocket client pings without reading for ``seconds`` at most."""
    with ServerProcess(extra_args=settings.server_args) as server:
        port = server.web_port
        sock = _connect(port, b"")
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(Request(host=f"127.0.0.1:{port}", target="/ws")))
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        ws.receive_data(answer)
        list(ws.events())
        burst = ws.send(Ping(b"p" * 125)) * 500
        sock.settimeout(0.05)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not _dropped(server):
            try:
                sock.send(burst)
            except TimeoutError:
                pass
            except OSError:
                break
        _wait(lambda: _dropped(server) > 0, 2.0)
        peak = _peak_mb(server)
        dropped = _dropped(server) > 0
        sock.close()
    result = _row("abuse pings", 1, peak, quiet_mb)
    result.notes.append(f"dropped as a slow consumer: {dropped}")
    return result


def replays(
    clients: int, messages: int, settings: Settings, quiet_mb: float | None
) -> Result:
    """``clients`` join with ``SINCE: 0`` over ``messages`` of 60 kB and
    never read."""
    with ServerProcess(extra_args=settings.server_args) as server:
        writer = _connect(server.port, _join("Writer"))
        text = "h" * LARGE
        writer.sendall(b"".join(_send(text, "writer") for _ in range(messages)))
        # Stored once the writer's own echo-less SENDs are handled.
        time.sleep(2.0)
        readers = [
            _connect(server.port, _join(f"R{i}", CAPS=["history"], SINCE=0))
            for i in range(clients)
        ]
        _wait(lambda: _dropped(server) >= clients, settings.timeout)
        peak = _peak_mb(server)
        dropped = _dropped(server)
        for sock in [writer, *readers]:
            sock.close()
    result = _row("abuse replays", clients, peak, quiet_mb)
    result.notes.append(
        f"{messages} messages of {LARGE} B each; {dropped} of {clients}"
        " dropped as slow consumers"
    )
    return result


def slow_readers(
    clients: int, seconds: float, settings: Settings, quiet_mb: float | None
) -> Result:
    """``clients`` never read while one sender broadcasts 60 kB messages
    for ``seconds``."""
    with ServerProcess(extra_args=settings.server_args) as server:
        readers = [_connect(server.port, _join(f"S{i}")) for i in range(clients)]
        sender = _connect(server.port, _join("Sender"))
        sender.settimeout(0.05)
        message = _send("s" * LARGE, "sender")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                sender.send(message * 10)
            except TimeoutError:
                pass
            try:
                sender.recv(65536)  # the sender reads its answers
            except TimeoutError:
                pass
        peak = _peak_mb(server)
        dropped = _dropped(server)
        for sock in [sender, *readers]:
            sock.close()
    result = _row("abuse slow readers", clients, peak, quiet_mb)
    result.notes.append(f"{dropped} of {clients} dropped as slow consumers")
    return result


def abuse_runs(settings: Settings, clients: int | None) -> list[Callable[[], Result]]:
    """The quiet server, then each attack (for three times ``--duration``),
    compared with it; ``clients`` replaces 50 replays and 200 slow readers."""
    figures: dict[str, float] = {}
    seconds = 3 * settings.duration

    def baseline() -> Result:
        figures["quiet"] = quiet(settings)
        return _row("abuse quiet", 1, figures["quiet"], None)

    return [
        baseline,
        lambda: pings(seconds, settings, figures.get("quiet")),
        lambda: replays(clients or 50, 100, settings, figures.get("quiet")),
        lambda: slow_readers(clients or 200, seconds, settings, figures.get("quiet")),
    ]
