"""Graceful shutdown of a real ``twistd -n muca`` and of the service in process."""

from __future__ import annotations

import json
import signal
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionRefusedError,
    ProcessTerminated,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.service import tap
from tests.support import (
    TIMEOUT,
    MemoryServer,
    RecordingTransport,
    connect,
    join,
    send,
)
from tests.support.twistd import WAIT, open_clients, raise_open_file_limit, start_twistd

CLIENTS = 1000


def join_line(i: int) -> bytes:
    """A native JOIN of user ``i``, asking for presence deltas."""
    fields = join(f"user{i}", f"u{i}@hku.hk", V=2, CAPS=["presence-delta"])
    return json.dumps(fields).encode() + b"\n"


class SigtermTests(TestCase):
    timeout = 120

    async def test_sigterm_with_1000_clients_closes_all_and_exits_by_signal(
        self,
    ) -> None:
        raise_open_file_limit(self, 2 * CLIENTS + 200)
        server = await start_twistd(self, "--max-per-address", "0")
        clients = await open_clients(
            self, server.port, [join_line(i) for i in range(CLIENTS)]
        )
        acks = await defer.gatherResults([c.acked for c in clients]).addTimeout(
            WAIT, reactor
        )
        self.assertEqual(set(acks), {b'{"CMD":"ACK","TYPE":"OKAY","MAX_FRAME":65536}'})

        server.terminate()
        # How long it takes is on a fake clock (CloseAllTests); here, that it
        # ends, and how.
        (reason,) = await server.process.ended(WAIT)
        # twistd's convention: after a clean shutdown it ends by the signal
        # it got, so that a supervisor sees why.
        self.assertIsInstance(reason.value, ProcessTerminated)
        self.assertEqual(reason.value.signal, signal.SIGTERM)
        self.assertNotIn("Traceback", server.process.output)
        self.assertIn(f"closing {CLIENTS} connections", server.process.output)
        self.assertIn("Server Shut Down.", server.process.output)
        # Every client sees its connection closed.
        await defer.gatherResults([c.closed for c in clients]).addTimeout(WAIT, reactor)


class PeerTransport(RecordingTransport):
    """A peer that reads goes as soon as the server closes (on the next
    turn); one that does not read only when the server aborts."""

    def __init__(self, port: int, clock: Clock, reads: bool) -> None:
        super().__init__(port)
        self.clock = clock
        self.reads = reads
        self.protocol: Any = None
        self.reason: Exception | None = None

    def loseConnection(self) -> None:
        super().loseConnection()
        if self.reads:
            self._lost(ConnectionDone())

    def abortConnection(self) -> None:
        super().abortConnection()
        self._lost(ConnectionAborted())

    def _lost(self, reason: Exception) -> None:
        if self.reason is None:
            self.reason = reason
            self.clock.callLater(0, self.protocol.connectionLost, Failure(reason))


class CloseAllTests(SynchronousTestCase):
    """``close_all`` at SIGTERM, on a fake clock: it waits for the peers
    that go, and no longer than its grace for those that do not."""

    def setUp(self) -> None:
        self.server = MemoryServer()
        self.addCleanup(self.server.stop)

    def connect(self, count: int, reads: bool) -> list[PeerTransport]:
        """``count`` joined peers."""
        transports = []
        for _ in range(count):
            port = len(self.server.factory.connections) + 40000
            protocol = self.server.factory.buildProtocol(
                IPv4Address("TCP", "127.0.0.1", port)
            )
            transport = PeerTransport(port, self.server.clock, reads)
            transport.protocol = protocol
            protocol.makeConnection(transport)
            protocol.dataReceived(join_line(port))
            transports.append(transport)
        self.server.clock.advance(0)
        return transports

    def run_until(self, done: defer.Deferred[None], seconds: float) -> float:
        """Let time pass in 10 ms steps, as on a reactor; the time ``done``
        fired at (or fail)."""
        clock = self.server.clock
        started = clock.seconds()
        for _ in range(round(seconds / 0.01)):
            if done.called:
                return clock.seconds() - started
            clock.advance(0.01)
        self.fail(f"close_all had not fired after {seconds} s")

    def test_peers_that_go_are_not_waited_for_longer(self) -> None:
        peers = self.connect(CLIENTS, reads=True)
        elapsed = self.run_until(self.server.factory.close_all(1.0), 5)
        self.assertLess(elapsed, 0.1)
        self.assertEqual(self.server.factory.connections, set())
        self.assertEqual({type(p.reason) for p in peers}, {ConnectionDone})

    def test_it_fires_in_the_turn_the_last_peer_goes_and_leaves_no_timer(
        self,
    ) -> None:
        peers = self.connect(CLIENTS, reads=True)
        done = self.server.factory.close_all(1.0)
        self.assertFalse(done.called)
        self.server.clock.advance(0)  # the peers go; no time passes
        self.assertTrue(done.called)
        self.assertEqual({type(p.reason) for p in peers}, {ConnectionDone})
        self.assertEqual(self.server.clock.getDelayedCalls(), [])

    def test_peers_that_do_not_read_are_cut_at_the_grace(self) -> None:
        going = self.connect(CLIENTS // 2, reads=True)
        stuck = self.connect(CLIENTS // 2, reads=False)
        done = self.server.factory.close_all(1.0)
        self.server.clock.pump([0.01] * 10)
        self.assertEqual(len(self.server.factory.connections), CLIENTS // 2)
        self.assertFalse(done.called)
        elapsed = 0.1 + self.run_until(done, 5)
        self.assertGreaterEqual(elapsed, 1.0)
        self.assertLess(elapsed, 1.1)
        self.assertEqual(self.server.factory.connections, set())
        self.assertEqual({type(p.reason) for p in going}, {ConnectionDone})
        self.assertEqual({type(p.reason) for p in stuck}, {ConnectionAborted})


class SigtermBacklogTests(TestCase):
    timeout = 120

    async def test_every_send_held_by_the_rate_limit_is_delivered_or_refused(
        self,
    ) -> None:
        # Defaults: 20 a second after a burst of 50.
        server = await start_twistd(self)
        tony, mary, henry = [await connect(self, server.port) for _ in range(3)]
        for client, who in ((tony, "tony"), (mary, "mary"), (henry, "henry")):
            client.send_json(join(who, f"{who}@hku.hk"))
            self.assertEqual((await client.next_object())["TYPE"], "OKAY")
        count = 150
        senders = ((mary, "mary@hku.hk"), (henry, "henry@hku.hk"))
        for sender, uid in senders:
            # One write of about 10 kB: read by the server at once, most of
            # it then held by the rate limit.
            sender.send(
                b"".join(
                    json.dumps(send(f"{uid} {i}", ["tony@hku.hk"], uid)).encode()
                    + b"\n"
                    for i in range(count)
                )
            )

        def delivered() -> list[str]:
            return [o["MSG"] for o in tony.objects if o.get("CMD") == "MSG"]

        # Both bursts are in: the rest waits for the rate when SIGTERM comes.
        for _ in range(int(WAIT * 20)):
            if len(delivered()) >= 100:
                break
            await deferLater(reactor, 0.05, lambda: None)
        server.terminate()
        await defer.gatherResults([c.closed(WAIT) for c in (tony, mary, henry)])
        await server.process.ended(WAIT)
        self.assertNotIn("Traceback", server.process.output)
        got = delivered()
        for sender, uid in senders:
            texts = [t for t in got if t.startswith(uid + " ")]
            refused = [
                o
                for o in sender.objects
                if o.get("CMD") == "ERROR" and o["CODE"] == "SERVER_SHUTDOWN"
            ]
            self.assertGreaterEqual(len(texts), 50)
            # Delivered in order, and every one of the others refused.
            self.assertEqual(texts, [f"{uid} {i}" for i in range(len(texts))])
            self.assertEqual(len(texts) + len(refused), count, (uid, len(texts)))
            self.assertEqual({o.get("REF") for o in refused}, {"SEND"})
            others = [o for o in sender.objects if o.get("CMD") == "ERROR"]
            self.assertEqual(others, refused)


class StopServiceTests(TestCase):
    async def test_stopping_the_service_closes_the_listener_and_every_connection(
        self,
    ) -> None:
        options = tap.Options()
        options.parseOptions(["--listen", "tcp:0:interface=127.0.0.1", "--web", "none"])
        service = tap.makeService(options)
        service.privilegedStartService()
        service.startService()
        # The endpoint service keeps its port's Deferred privately.
        (listening,) = await defer.gatherResults(
            [child._waitingForPort for child in service]
        )
        port = listening.getHost().port
        tony = await connect(self, port)
        tony.send_json(join("Tony", "tony@hku.hk"))
        await tony.next_objects(2)
        idle = await connect(self, port)
        idle.send(b'{"CMD":"SEND"')  # half a frame
        await service.stopService()
        await tony.closed()
        await idle.closed()
        self.assertEqual(service.factory.connections, set())
        self.assertEqual(len(service.factory.room), 0)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)
        with self.assertRaises(ConnectionRefusedError):
            await connectProtocol(endpoint, Protocol())
