"""Graceful shutdown of a real ``twistd -n muca`` and of the service in process."""

from __future__ import annotations

import json
import signal
import time

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionRefusedError, ProcessTerminated
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from muca.server import tap
from tests.support import TIMEOUT, connect, join, send
from tests.support.twistd import WAIT, open_clients, raise_open_file_limit, start_twistd

CLIENTS = 1000


def join_line(i: int) -> bytes:
    """A native JOIN of user ``i``, asking for presence deltas."""
    fields = join(f"user{i}", f"u{i}@hku.hk", V=2, CAPS=["presence-delta"])
    return json.dumps(fields).encode() + b"\n"


class SigtermTests(TestCase):
    timeout = 120

    async def test_sigterm_with_1000_clients_ends_within_2_seconds(self) -> None:
        raise_open_file_limit(self, 2 * CLIENTS + 200)
        server = await start_twistd(self, "--max-per-address", "0")
        clients = await open_clients(
            self, server.port, [join_line(i) for i in range(CLIENTS)]
        )
        acks = await defer.gatherResults([c.acked for c in clients]).addTimeout(
            WAIT, reactor
        )
        self.assertEqual(set(acks), {b'{"CMD":"ACK","TYPE":"OKAY","MAX_FRAME":65536}'})

        started = time.monotonic()
        server.terminate()
        (reason,) = await server.process.ended(WAIT)
        elapsed = time.monotonic() - started
        Logger().info(
            "SIGTERM to exit with {n} clients: {s:.3f} s", n=CLIENTS, s=elapsed
        )
        self.assertLess(elapsed, 2.0, server.process.output[-2000:])
        # twistd's convention: after a clean shutdown it ends by the signal
        # it got, so that a supervisor sees why.
        self.assertIsInstance(reason.value, ProcessTerminated)
        self.assertEqual(reason.value.signal, signal.SIGTERM)
        self.assertNotIn("Traceback", server.process.output)
        self.assertIn(f"closing {CLIENTS} connections", server.process.output)
        self.assertIn("Server Shut Down.", server.process.output)
        # Every client sees its connection closed.
        await defer.gatherResults([c.closed for c in clients])


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
