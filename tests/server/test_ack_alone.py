"""An original client's ACK leaves alone: some such clients take each
``recv()`` as one JSON object and show no peer list when ACK and LIST come
in one read. Its LIST (and whatever follows) waits ``ack_alone`` seconds;
native clients' output is never held."""

from __future__ import annotations

import json
import time

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.server.context import DEFAULT_ACK_ALONE as ACK_ALONE
from tests.support import OKAY, MemoryServer, join, roster, send
from tests.support.peers import OneReadOnePeer
from tests.support.twistd import WAIT, start_twistd

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
ACK_BYTES = b'{"CMD": "ACK", "TYPE": "OKAY"}'


class HeldOutputTests(SynchronousTestCase):
    """On a fake clock: what leaves when."""

    def setUp(self) -> None:
        self.server = MemoryServer(ack_alone=ACK_ALONE)
        self.addCleanup(self.server.stop)

    def test_the_default_is_twenty_milliseconds(self) -> None:
        self.assertEqual(ACK_ALONE, 0.02)

    def test_an_original_clients_list_follows_its_ack_later(self) -> None:
        mary = self.server.connect()
        mary.send(json.dumps(join(*MARY)).encode())
        self.assertEqual(mary.take_bytes(), ACK_BYTES)
        self.server.clock.advance(ACK_ALONE - 0.001)
        self.assertEqual(mary.take_bytes(), b"")
        self.server.clock.advance(0.001)
        self.assertEqual(json.loads(mary.take_bytes()), roster(MARY))

    def test_what_comes_meanwhile_follows_the_list_in_order(self) -> None:
        tony = self.server.connect()
        tony.send_json(join(*TONY))
        self.assertEqual(tony.take(), [OKAY, roster(TONY)])
        mary = self.server.connect()
        mary.send(json.dumps(join(*MARY)).encode())
        self.assertEqual(mary.take_bytes(), ACK_BYTES)
        # Tony hears of Mary at once: his output is never held.
        self.assertEqual(tony.take(), [roster(TONY, MARY)])
        tony.send_json(send("hi Mary", [MARY[1]], TONY[1]))
        self.assertEqual(mary.take_bytes(), b"")
        self.server.clock.advance(ACK_ALONE)
        objects = mary.take()
        self.assertEqual(
            [o["CMD"] for o in objects], ["LIST", "MSG"], objects
        )  # fmt: skip
        self.assertEqual(objects[1]["MSG"], "hi Mary")

    def test_a_native_client_gets_its_list_in_the_same_turn(self) -> None:
        tony = self.server.connect()
        tony.send_json(join(*TONY))
        self.assertEqual(tony.take(), [OKAY, roster(TONY)])

    def test_a_close_meanwhile_writes_what_was_held_first(self) -> None:
        mary = self.server.connect()
        mary.send(json.dumps(join(*MARY)).encode())
        self.assertEqual(mary.take_bytes(), ACK_BYTES)
        mary.protocol.close()
        self.assertEqual(json.loads(mary.take_bytes()), roster(MARY))
        self.assertTrue(mary.closed_by_server)

    def test_a_lost_connection_leaves_no_timer_behind(self) -> None:
        mary = self.server.connect()
        mary.send(json.dumps(join(*MARY)).encode())
        mary.take_bytes()
        release = mary.protocol._release_held
        self.assertIn(release, [c.func for c in self.server.clock.getDelayedCalls()])
        mary.lose()
        self.assertNotIn(release, [c.func for c in self.server.clock.getDelayedCalls()])


class OneReadOneObjectTests(TestCase):
    """A real server and a peer that takes each read as one object."""

    async def test_ack_and_list_come_in_separate_reads(self) -> None:
        server = await start_twistd(self, "--db", "none", "--list-interval", "0")
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", server.port, timeout=WAIT)
        separate = 0
        for i in range(50):
            peer = await connectProtocol(endpoint, OneReadOnePeer())
            peer.send_json(join(f"User{i}", f"user{i}@hku.hk"))
            # Wait (bounded) until both have arrived, read apart or together.
            deadline = time.monotonic() + WAIT
            while b'"LIST"' not in peer.received or not peer.received.endswith(b"}"):
                self.assertLess(time.monotonic(), deadline, peer.received)
                await deferLater(reactor, 0.005)
            commands = [obj["CMD"] for obj in peer.objects]
            if commands == ["ACK", "LIST"]:
                separate += 1
            else:
                self.assertEqual(peer.reader.unreadable, 1, peer.received)
            await peer.close()
        print(f"ACK and LIST in separate reads: {separate} of 50 joins")
        self.assertGreaterEqual(separate, 48)
