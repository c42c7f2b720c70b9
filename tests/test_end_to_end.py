"""End-to-end tests over real loopback TCP against the ``twistd muca`` service."""

from __future__ import annotations

import socket

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from muca.server import ChatFactory, ChatProtocol
from tests.support import connect, join, roster, send, start_server

TONY = ("Tony", "Tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")


class SeedScenarioTests(TestCase):
    async def test_join_gets_ack_then_list(self) -> None:
        port = await start_server(self)
        tony = await connect(self, port)
        tony.send_json(join(*TONY))
        self.assertEqual(
            await tony.next_objects(2),
            [{"CMD": "ACK", "TYPE": "OKAY"}, roster(TONY)],
        )
        mary = await connect(self, port)
        mary.send_json(join(*MARY))
        self.assertEqual(
            await mary.next_objects(2),
            [{"CMD": "ACK", "TYPE": "OKAY"}, roster(TONY, MARY)],
        )
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))
        mary.send_json(send("hi", [TONY[1]], MARY[1]))
        msg = await tony.next_object()
        self.assertEqual(msg["MSG"], "hi")


class ReplyWritingTests(TestCase):
    """Replies (ACK, ERROR) leave at once, yet never overtake queued bytes."""

    async def connected(self) -> tuple[ChatProtocol, socket.socket]:
        """A real loopback connection: the server's protocol and a raw socket."""
        factory = ChatFactory()
        protocols: list[ChatProtocol] = []
        build = factory.buildProtocol

        def remember(address: object) -> ChatProtocol:
            protocol = build(address)
            protocols.append(protocol)
            return protocol

        factory.buildProtocol = remember
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = socket.create_connection(("127.0.0.1", port.getHost().port), 5)
        self.addCleanup(client.close)
        for _ in range(100):
            if protocols:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(protocols, "the server did not accept")
        self.addCleanup(protocols[0].transport.loseConnection)
        client.settimeout(5)
        return protocols[0], client

    async def test_reply_is_on_the_wire_before_the_reactor_runs_again(self) -> None:
        protocol, client = await self.connected()
        protocol.send({"CMD": "ACK", "TYPE": "OKAY"})
        # No reactor turn in between: the bytes were sent by send() itself.
        self.assertEqual(client.recv(100), b'{"CMD":"ACK","TYPE":"OKAY"}\n')

    async def test_reply_waits_behind_bytes_already_queued(self) -> None:
        protocol, client = await self.connected()
        protocol.transport.write(b'{"CMD":"LIST","DATA":[]}\n')
        protocol.send({"CMD": "ACK", "TYPE": "OKAY"})
        received = b""
        for _ in range(100):
            if received.count(b"\n") == 2:
                break
            await deferLater(reactor, 0.01, lambda: None)
            client.setblocking(False)
            try:
                received += client.recv(100)
            except BlockingIOError:
                pass
        self.assertEqual(
            received, b'{"CMD":"LIST","DATA":[]}\n{"CMD":"ACK","TYPE":"OKAY"}\n'
        )
