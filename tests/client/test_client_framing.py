"""How ChatClient reads and writes servers it did not meet before: the
original's unframed objects, brace-depth and ASCII-only readers, and our own
server's newline framing once its first reply shows it."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from muca.client.observer import ReceivedMessage
from muca.protocol.messages import (
    PRIVATE,
    Peer,
)
from muca.protocol.wire import Framing
from tests.support import start_server
from tests.support.client import (
    MARY,
    TONY,
    RecordingObserver,
    listen_loopback,
    wait_until,
)
from tests.support.peers import AsciiOnlyReader, BraceDepthReader
from tests.support.servers import PickyRoom, RecordingRelay


class OriginalServer(Protocol):
    """A server in the original's manner: objects back to back, no newline,
    ASCII; it reads each chunk with ``json.loads`` (as the original did)."""

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.received: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)
        obj = json.loads(data)
        if obj["CMD"] == "JOIN":
            self.uid = obj["UID"]
            peers = [
                {"UN": "Mary", "UID": "mary@hku.hk"},
                {"UN": obj["UN"], "UID": obj["UID"]},
            ]
            # ACK, LIST and a message in one write, as a busy original server does.
            self.transport.write(
                json.dumps({"CMD": "ACK", "TYPE": "OKAY"}).encode()
                + json.dumps({"CMD": "LIST", "DATA": peers}).encode()
                + json.dumps(
                    {
                        "CMD": "MSG",
                        "TYPE": "PRIVATE",
                        "MSG": "hi }{ there",
                        "FROM": "mary@hku.hk",
                    }
                ).encode()
            )

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.connections.remove(self)


class ClientAgainstOriginalServerTests(TestCase):
    async def test_unframed_objects_are_understood(self) -> None:
        factory = Factory.forProtocol(OriginalServer)
        factory.connections = []
        port = await listen_loopback(self, factory)
        observer = RecordingObserver()
        client = ChatClient(reactor, *TONY, observer=observer)
        self.addCleanup(client.leave)
        await client.connect_tcp("127.0.0.1", port)
        await client.join()
        message = await observer.next_of("message")
        self.assertEqual(
            message, ReceivedMessage(PRIVATE, "mary@hku.hk", "Mary", "hi }{ there")
        )
        self.assertEqual(client.peers, (Peer("Mary", "mary@hku.hk"), Peer(*TONY)))
        sent = b"".join(factory.connections[0].received)
        # Its replies are not newline-framed: the JOIN goes out as the
        # original client writes it, and so does everything after it.
        self.assertFalse(sent.endswith(b"\n"))
        self.assertEqual(client.framing, Framing.ORIGINAL)
        join = json.loads(sent)
        self.assertEqual(join["V"], 2)
        self.assertEqual(
            join["CAPS"],
            ["presence-delta", "history", "known", "rooms", "search", "moderation"],
        )
        self.assertEqual((join["UN"], join["UID"]), TONY)


class FramingTests(TestCase):
    """What the client writes to servers it did not meet before."""

    async def room(self, room: PickyRoom) -> tuple[ChatClient, RecordingObserver]:
        port = await listen_loopback(self, room)
        clients = []
        for user in (TONY, MARY):
            observer = RecordingObserver()
            client = ChatClient(reactor, *user, observer=observer)
            self.addCleanup(client.leave)
            await client.connect_tcp("127.0.0.1", port)
            await client.join()
            clients.append((client, observer))
        (tony, _), (_, mary_seen) = clients
        await mary_seen.next_of("peers")
        return tony, mary_seen

    async def test_brace_depth_server_keeps_us_past_ack_and_list(self) -> None:
        room = PickyRoom()
        tony, mary_seen = await self.room(room)
        tony.send([MARY[1]], "still here?")
        tony.send([], "and everyone")
        await mary_seen.next_of("message", 2)
        self.assertEqual(
            [m.text for m in mary_seen.of("message")], ["still here?", "and everyone"]
        )
        self.assertEqual(room.drops, [])
        self.assertEqual(len(room.joined()), 2)
        tony_bytes = room.peers[0].received
        self.assertNotIn(b"\n", tony_bytes)
        self.assertTrue(tony_bytes.startswith(b'{"CMD": "JOIN", "UN": "Tony"'))
        self.assertEqual(tony.framing, Framing.ORIGINAL)
        # The other developer's readers of those peers take every byte too.
        for reader in (BraceDepthReader(), AsciiOnlyReader()):
            commands = [obj["CMD"] for obj in reader.feed(bytes(tony_bytes))]
            self.assertEqual(commands, ["JOIN", "SEND", "SEND"], reader)

    async def test_ascii_only_server_gets_escapes_and_text_arrives_intact(
        self,
    ) -> None:
        room = PickyRoom(ascii_only=True)
        tony, mary_seen = await self.room(room)
        tony.send([MARY[1]], "café ☕")
        message = await mary_seen.next_of("message")
        self.assertEqual(message.text, "café ☕")
        self.assertIsNone(room.dead)
        self.assertIn(b'"MSG": "caf\\u00e9 \\u2615"', room.peers[0].received)
        room.peers[0].received.decode("ascii")  # nothing but ASCII

    async def test_our_server_is_written_to_natively_after_its_first_reply(
        self,
    ) -> None:
        server_port = await start_server(self)
        relay = RecordingRelay("127.0.0.1", server_port)
        port = await listen_loopback(self, relay)
        observer = RecordingObserver()
        mary = ChatClient(reactor, *MARY, observer=observer)
        self.addCleanup(mary.leave)
        await mary.connect_tcp("127.0.0.1", server_port)
        await mary.join()
        tony = ChatClient(reactor, *TONY)
        self.addCleanup(tony.leave)
        await tony.connect_tcp("127.0.0.1", port)
        await tony.join()
        join_bytes = bytes(relay.sent)
        self.assertEqual(json.loads(join_bytes)["V"], 2)
        self.assertFalse(join_bytes.endswith(b"\n"))  # no framing known yet
        self.assertEqual(tony.framing, Framing.NATIVE)
        tony.send([], "café ☕")
        await wait_until(lambda: relay.sent.endswith(b"\n"), what="the SEND")
        self.assertEqual(
            bytes(relay.sent[len(join_bytes) :]),
            '{"CMD":"SEND","MSG":"café ☕","TO":[],"FROM":"Tony@hku.hk"}\n'.encode(),
        )
        message = await observer.next_of("message")
        self.assertEqual(message.text, "café ☕")
