"""The memory attacks of one client, against a real ``twistd -n muca``:
WebSocket pings never read back, history replays to clients that do not
read, and slow readers past ``--max-outbound-total``. Each reads the
server's resident memory (``VmRSS`` of /proc/PID/status) before, during and
after, and checks that the attackers are dropped as slow consumers."""

from __future__ import annotations

import json
import re
import socket
import time

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.trial.unittest import TestCase
from wsproto import ConnectionType, WSConnection
from wsproto.events import Ping, Request

from tests.support import join, send
from tests.support.twistd import Twistd, open_clients, start_twistd
from tests.support.websocket import connect_websocket, start_web_server

log = Logger()
MB = 1024 * 1024
#: Seconds an attack goes on at most.
ATTACK = 15.0


def reader_socket(port: int, testcase: TestCase, obj: dict) -> socket.socket:
    """A client with a small receive buffer that sends ``obj`` and never
    reads."""
    sock = socket.socket()
    testcase.addCleanup(sock.close)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(json.dumps(obj).encode() + b"\n")
    return sock


def dropped_ports(server: Twistd) -> list[int]:
    """The client ports the server disconnected as slow consumers."""
    found = re.findall(
        r"disconnecting 127\.0\.0\.1:(\d+): slow consumer", server.process.output
    )
    return [int(port) for port in found]


async def until(check: object, seconds: float) -> None:
    """Wait (polling) until ``check()`` is true or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        await deferLater(reactor, 0.05, lambda: None)


def note(test: TestCase, before: int, peak: int, after: int) -> None:
    log.info(
        "{test}: server VmRSS {before:.1f} MiB before, {peak:.1f} MiB at the"
        " peak, {after:.1f} MiB after",
        test=test.id(),
        before=before / MB,
        peak=peak / MB,
        after=after / MB,
    )


class PingTests(TestCase):
    """A WebSocket peer that pings and never reads."""

    timeout = 60

    async def test_pings_wait_for_the_rate_limit(self) -> None:
        _, web = await start_web_server(
            self, "--rate-limit", "20", "--rate-burst", "50"
        )
        client = await connect_websocket(self, web)
        started = reactor.seconds()
        pongs = [client.ping() for _ in range(100)]
        await until(lambda: sum(1 for pong in pongs if pong.called) >= 50, 10)
        await defer.gatherResults(pongs)
        # The burst of 50 at once, then 20 a second: the other 50 take
        # 2.5 s (a loaded machine only makes it longer); unpaced, all 100
        # came back at once.
        self.assertGreater(reactor.seconds() - started, 2.0)

    async def test_pinging_without_reading_is_dropped(self) -> None:
        # No rate limit: the worst case, every ping answered at once.
        server = await start_twistd(
            self,
            "--db",
            "none",
            "--web",
            "tcp:0:interface=127.0.0.1",
            "--rate-limit",
            "0",
            "--max-outbound",
            str(MB),
        )
        match = await server.process.wait_for(r"Site starting on (\d+)")
        web = int(match.group(1))
        before = server.status("VmRSS")
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", web))
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(Request(host=f"127.0.0.1:{web}", target="/ws")))
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        self.assertIn(b" 101 ", answer.split(b"\r\n")[0])
        ws.receive_data(answer)
        list(ws.events())
        port = sock.getsockname()[1]
        burst = ws.send(Ping(b"p" * 125)) * 500
        sock.setblocking(False)
        peak = before
        deadline = time.monotonic() + ATTACK
        while port not in dropped_ports(server) and time.monotonic() < deadline:
            try:
                sock.send(burst)
            except BlockingIOError:
                pass
            except OSError:
                break  # reset by the server
            await deferLater(reactor, 0.002, lambda: None)
            peak = max(peak, server.status("VmRSS"))
        await until(lambda: port in dropped_ports(server), 5)
        self.assertIn(port, dropped_ports(server))
        sock.close()
        await deferLater(reactor, 1.5, lambda: None)
        after = server.status("VmRSS")
        note(self, before, peak, after)
        self.assertLess(peak - before, 30 * MB, f"peak {peak / MB:.1f} MiB")
        self.assertLess(after - before, 20 * MB, f"after {after / MB:.1f} MiB")
        self.assertNotIn("Traceback", server.process.output)


class ReplayTests(TestCase):
    """Clients that ask for the history and do not read it."""

    timeout = 90

    async def test_replays_to_clients_that_do_not_read(self) -> None:
        server = await start_twistd(self, "--rate-limit", "0")
        (writer,) = await open_clients(
            self, server.port, [json.dumps(join("W", "w@hku.hk", V=2)).encode() + b"\n"]
        )
        await writer.acked
        # 100 messages of 60 kB: each replay is 6 MB.
        text = "h" * 60_000
        writer.transport.write(
            b"".join(
                json.dumps(send(text, [], "w@hku.hk")).encode() + b"\n"
                for _ in range(100)
            )
        )
        await until(lambda: writer.received > 0 and writer.messages >= 0, 1)
        await deferLater(reactor, 2.0, lambda: None)
        before = server.status("VmRSS")
        ports = []
        for i in range(50):
            sock = reader_socket(
                server.port,
                self,
                join(f"R{i}", f"r{i}@hku.hk", V=2, CAPS=["history"], SINCE=0),
            )
            ports.append(sock.getsockname()[1])
        peak = before
        deadline = time.monotonic() + ATTACK
        while not set(ports) <= set(dropped_ports(server)):
            if time.monotonic() > deadline:
                break
            await deferLater(reactor, 0.1, lambda: None)
            peak = max(peak, server.status("VmRSS"))
        self.assertEqual(sorted(set(ports) & set(dropped_ports(server))), sorted(ports))
        await deferLater(reactor, 1.5, lambda: None)
        after = server.status("VmRSS")
        note(self, before, peak, after)
        # Written in one piece, the 50 replays were 300 MB.
        self.assertLess(peak - before, 60 * MB, f"peak {peak / MB:.1f} MiB")
        self.assertNotIn("Traceback", server.process.output)


class TotalTests(TestCase):
    """Slow readers together past --max-outbound-total."""

    timeout = 60

    async def test_the_reader_holding_most_is_dropped_first(self) -> None:
        server = await start_twistd(
            self,
            "--db",
            "none",
            "--rate-limit",
            "0",
            "--max-outbound",
            str(64 * MB),
            "--max-outbound-total",
            str(8 * MB),
        )
        (sender,) = await open_clients(
            self, server.port, [json.dumps(join("S", "s@hku.hk", V=2)).encode() + b"\n"]
        )
        await sender.acked
        names = ["a", "b", "c"]
        socks = {
            name: reader_socket(
                server.port, self, join(name.upper(), f"{name}@hku.hk", V=2)
            )
            for name in names
        }
        ports = {name: sock.getsockname()[1] for name, sock in socks.items()}
        await deferLater(reactor, 0.3, lambda: None)
        before = server.status("VmRSS")
        text = "t" * 60_000

        def burst(to: list[str], count: int) -> None:
            sender.transport.write(
                b"".join(
                    json.dumps(send(text, to, "s@hku.hk")).encode() + b"\n"
                    for _ in range(count)
                )
            )

        # A falls behind by 3 MB first; then all three together.
        burst(["a@hku.hk"], 50)
        await deferLater(reactor, 0.5, lambda: None)
        everyone = [f"{name}@hku.hk" for name in names]
        for _ in range(60):
            if dropped_ports(server):
                break
            burst(everyone, 5)
            await deferLater(reactor, 0.1, lambda: None)
        await deferLater(reactor, 0.5, lambda: None)
        peak = server.status("VmRSS")
        self.assertEqual(dropped_ports(server), [ports["a"]])
        self.assertIn("held the most", server.process.output)
        note(self, before, peak, peak)
        self.assertLess(peak - before, 40 * MB, f"peak {peak / MB:.1f} MiB")
        self.assertNotIn("Traceback", server.process.output)
