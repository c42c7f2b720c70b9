"""The output path: encoded payloads, the per-turn outbox, and when a write
may skip the transport's buffers."""

from __future__ import annotations

import socket

from twisted.internet import reactor, ssl
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from muca.protocol.wire import Framing
from muca.server.output import (
    EncodedPayload,
    Outbox,
    Payload,
    plain_socket,
    transport_idle,
)
from tests.support.client import make_certificates, temp_folder

HELLO = {"CMD": "MSG", "TYPE": "ALL", "MSG": "héllo }{", "FROM": "u1"}
HELLO_NATIVE = '{"CMD":"MSG","TYPE":"ALL","MSG":"héllo }{","FROM":"u1"}\n'.encode()
HELLO_ORIGINAL = (
    b'{"CMD": "MSG", "TYPE": "ALL", "MSG": "h\\u00e9llo }\\u007b", "FROM": "u1"}'
)
# ASCII: the peers of the length-prefixed dialect read nothing else.
HELLO_PREFIXED = (
    b"\x00\x00\x00\x3c"
    + b'{"CMD":"MSG","TYPE":"ALL","MSG":"h\\u00e9llo }{","FROM":"u1"}'
)
BYE = {"CMD": "MSG", "TYPE": "ALL", "MSG": "bye", "FROM": "u2"}
BYE_NATIVE = b'{"CMD":"MSG","TYPE":"ALL","MSG":"bye","FROM":"u2"}\n'
BYE_ORIGINAL = b'{"CMD": "MSG", "TYPE": "ALL", "MSG": "bye", "FROM": "u2"}'
BYE_PREFIXED = b"\x00\x00\x00\x32" + BYE_NATIVE[:-1]
# One unmasked text frame: FIN + text opcode, the length, the object (no \n).
HELLO_WEBSOCKET = b"\x81\x38" + HELLO_NATIVE[:-1]
BYE_WEBSOCKET = b"\x81\x32" + BYE_NATIVE[:-1]


class Recorder:
    """A connection that keeps what the outbox writes to it, write by write."""

    def __init__(self, framing: Framing | None = Framing.NATIVE) -> None:
        self.framing = framing
        self.writes: list[bytes] = []

    def write_now(self, data: bytes) -> None:
        self.writes.append(data)


class PayloadTests(TestCase):
    def test_each_framing_gets_its_own_bytes(self) -> None:
        payload = Payload(HELLO)
        self.assertEqual(payload.for_framing(Framing.NATIVE), HELLO_NATIVE)
        self.assertEqual(payload.for_framing(Framing.ORIGINAL), HELLO_ORIGINAL)
        self.assertEqual(payload.for_framing(Framing.PREFIXED), HELLO_PREFIXED)
        self.assertEqual(payload.for_framing(Framing.WEBSOCKET), HELLO_WEBSOCKET)
        # A connection whose framing is not known yet is answered natively.
        self.assertEqual(payload.for_framing(None), HELLO_NATIVE)

    def test_bytes_are_encoded_once_and_shared(self) -> None:
        payload = Payload(HELLO)
        for framing in (None, *Framing):
            with self.subTest(framing=framing):
                self.assertIs(
                    payload.for_framing(framing), payload.for_framing(framing)
                )
        self.assertIs(payload.for_framing(None), payload.native())

    def test_an_object_given_encoded_gets_every_framings_bytes(self) -> None:
        payload = EncodedPayload(HELLO_NATIVE)
        self.assertIs(payload.for_framing(Framing.NATIVE), HELLO_NATIVE)
        self.assertEqual(payload.for_framing(Framing.WEBSOCKET), HELLO_WEBSOCKET)
        self.assertEqual(payload.for_framing(Framing.ORIGINAL), HELLO_ORIGINAL)
        self.assertEqual(payload.for_framing(Framing.PREFIXED), HELLO_PREFIXED)


class OutboxTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.outbox = Outbox(self.clock)

    def test_queued_messages_leave_together_at_the_end_of_the_turn(self) -> None:
        native, original = Recorder(), Recorder(Framing.ORIGINAL)
        prefixed = Recorder(Framing.PREFIXED)
        browsers = [Recorder(Framing.WEBSOCKET), Recorder(Framing.WEBSOCKET)]
        everyone = [native, original, prefixed, *browsers]
        self.outbox.add(Payload(HELLO), everyone)
        self.outbox.add(Payload(BYE), everyone)
        self.assertTrue(self.outbox)
        self.assertEqual([c.writes for c in everyone], [[]] * len(everyone))
        self.clock.advance(0)
        self.assertEqual(native.writes, [HELLO_NATIVE + BYE_NATIVE])
        self.assertEqual(original.writes, [HELLO_ORIGINAL + BYE_ORIGINAL])
        self.assertEqual(prefixed.writes, [HELLO_PREFIXED + BYE_PREFIXED])
        for browser in browsers:
            self.assertEqual(browser.writes, [HELLO_WEBSOCKET + BYE_WEBSOCKET])
        self.assertFalse(self.outbox)

    def test_one_queued_message_is_written_as_encoded(self) -> None:
        unknown = Recorder(None)
        self.outbox.add(Payload(HELLO), [unknown])
        self.clock.advance(0)
        self.assertEqual(unknown.writes, [HELLO_NATIVE])

    def test_large_messages_of_a_turn_are_written_as_the_shared_bytes(
        self,
    ) -> None:
        # A turn of three 40 kB messages to 50 readers: each reader gets the
        # very bytes the fan-out encoded, not a joined copy of its own
        # (with slow readers, those copies are what filled the memory).
        readers = [Recorder() for _ in range(50)]
        payloads = [Payload({"CMD": "MSG", "MSG": c * 40_000}) for c in "abc"]
        for payload in payloads:
            self.outbox.add(payload, readers)
        self.clock.advance(0)
        for reader in readers:
            self.assertEqual(len(reader.writes), 3)
            for written, payload in zip(reader.writes, payloads, strict=True):
                self.assertIs(written, payload.native())
        # Small ones still leave in one write.
        self.outbox.add(Payload(HELLO), readers[:1])
        self.outbox.add(Payload(BYE), readers[:1])
        self.clock.advance(0)
        self.assertEqual(readers[0].writes[3:], [HELLO_NATIVE + BYE_NATIVE])

    def test_one_flush_per_turn_however_many_messages(self) -> None:
        connection = Recorder()
        for _ in range(3):
            self.outbox.add(Payload(BYE), [connection])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0)
        self.assertEqual(connection.writes, [BYE_NATIVE * 3])
        # The next turn's messages are flushed at the end of that turn.
        self.outbox.add(Payload(HELLO), [connection])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0)
        self.assertEqual(connection.writes, [BYE_NATIVE * 3, HELLO_NATIVE])

    def test_end_of_turn_work_runs_first_and_its_output_leaves_with_the_rest(
        self,
    ) -> None:
        connection = Recorder()
        ran: list[str] = []

        def work() -> None:
            # A history store's turn: the messages, stored, are delivered.
            ran.append("work")
            self.outbox.add(Payload(BYE), [connection])

        self.outbox.at_flush(work)
        self.outbox.add(Payload(HELLO), [connection])
        self.assertEqual((ran, connection.writes), ([], []))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0)
        self.assertEqual(ran, ["work"])
        self.assertEqual(connection.writes, [HELLO_NATIVE + BYE_NATIVE])
        self.clock.advance(0)
        self.assertEqual(ran, ["work"])  # once

    def test_an_early_flush_cancels_the_end_of_turn_flush(self) -> None:
        connection = Recorder()
        self.outbox.add(Payload(BYE), [connection])
        self.outbox.flush()
        self.assertEqual(connection.writes, [BYE_NATIVE])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # A message queued after it gets a flush of its own.
        self.outbox.add(Payload(HELLO), [connection])
        self.clock.advance(0)
        self.assertEqual(connection.writes, [BYE_NATIVE, HELLO_NATIVE])

    def test_a_reply_goes_behind_every_message_queued_for_that_connection(
        self,
    ) -> None:
        replied, other = Recorder(), Recorder()
        self.outbox.add(Payload(HELLO), [replied, other])
        self.outbox.add(Payload(BYE), [replied, other])
        self.outbox.flush_one(replied)
        # Both queued messages, intact and in order, before the reply.
        self.assertEqual(replied.writes, [HELLO_NATIVE + BYE_NATIVE])
        self.assertEqual(other.writes, [])
        self.clock.advance(0)
        self.assertEqual(replied.writes, [HELLO_NATIVE + BYE_NATIVE])
        self.assertEqual(other.writes, [HELLO_NATIVE + BYE_NATIVE])

    def test_a_reply_with_nothing_queued_writes_nothing_first(self) -> None:
        connection = Recorder()
        self.outbox.flush_one(connection)
        self.assertEqual(connection.writes, [])


class TransportIdleTests(TestCase):
    """transport_idle on a real loopback TCP connection, one state at a time."""

    async def connected(self) -> tuple[Protocol, socket.socket]:
        """The server side of a real loopback connection, and its raw peer."""
        protocols: list[Protocol] = []

        class Remembered(Protocol):
            def connectionMade(self) -> None:
                protocols.append(self)

        port = reactor.listenTCP(
            0, Factory.forProtocol(Remembered), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        client = socket.create_connection(("127.0.0.1", port.getHost().port), 5)
        self.addCleanup(client.close)
        for _ in range(200):
            if protocols:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(protocols, "the server did not accept")
        self.addCleanup(protocols[0].transport.abortConnection)
        return protocols[0], client

    async def test_an_open_connection_with_nothing_queued_is_idle(self) -> None:
        protocol, _ = await self.connected()
        self.assertIsNotNone(plain_socket(protocol.transport))
        self.assertTrue(transport_idle(protocol.transport))

    async def test_bytes_written_this_turn_are_not_idle(self) -> None:
        protocol, _ = await self.connected()
        protocol.transport.write(b"queued\n")
        self.assertFalse(transport_idle(protocol.transport))

    async def test_bytes_the_peer_has_not_taken_are_not_idle(self) -> None:
        protocol, client = await self.connected()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # More than the kernel takes while the peer reads nothing.
        protocol.transport.write(b"x" * (16 * 1024 * 1024))
        transport = protocol.transport
        for _ in range(200):
            if not transport._tempDataLen:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(transport._tempDataLen, 0)
        self.assertTrue(transport.dataBuffer)
        self.assertFalse(transport_idle(transport))

    async def test_a_closing_connection_is_not_idle(self) -> None:
        protocol, _ = await self.connected()
        protocol.transport.loseConnection()
        self.assertTrue(protocol.transport.connected)
        self.assertFalse(transport_idle(protocol.transport))

    async def test_a_closed_connection_is_not_idle(self) -> None:
        protocol, client = await self.connected()
        transport = protocol.transport
        client.close()
        for _ in range(200):
            if not transport.connected:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertFalse(transport.connected)
        self.assertFalse(transport.disconnecting)
        self.assertFalse(transport_idle(transport))

    async def test_a_connection_that_started_tls_is_not_idle(self) -> None:
        paths = make_certificates(temp_folder(self))
        protocol, _ = await self.connected()
        options = ssl.DefaultOpenSSLContextFactory(paths["key"], paths["cert"])
        protocol.transport.startTLS(options)
        self.assertTrue(protocol.transport.TLS)
        self.assertFalse(transport_idle(protocol.transport))
