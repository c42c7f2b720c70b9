"""Tests of muca.client.client: the client API against real servers on loopback."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from muca.client.errors import (
    ClientError,
    MessageTooLong,
    NotConnected,
)
from muca.client.observer import ReceivedMessage
from muca.protocol.messages import (
    ALL,
    AUTH_FAILED,
    GROUP,
    PRIVATE,
    UID_TAKEN,
    UNKNOWN_RECIPIENT,
    JoinRefused,
    Peer,
)
from muca.protocol.wire import Framing
from tests.support import start_server
from tests.support.client import (
    HENRY,
    MARY,
    TONY,
    ClientTestCase,
    ClientTestMixin,
    RecordingObserver,
    listen_loopback,
    settle,
    wait_until,
)
from tests.support.peers import AsciiOnlyReader, BraceDepthReader
from tests.support.servers import PickyRoom, RecordingRelay


class ClientAgainstServerTests(ClientTestCase):
    async def test_join_reports_joined_and_peer_list(self) -> None:
        client, observer = await self.client(TONY)
        self.assertTrue(client.joined)
        peers = await observer.next_of("peers")
        self.assertEqual(peers, (Peer(*TONY),))
        self.assertEqual(observer.events[0], ("joined", None))
        self.assertEqual(client.peers, (Peer(*TONY),))

    async def test_client_asks_for_presence_deltas_and_applies_them(self) -> None:
        tony, tony_seen = await self.client(TONY)
        received: list[Any] = []
        handle = tony._handle
        tony._handle = lambda command: (received.append(command), handle(command))
        await tony_seen.next_of("peers")
        mary, _ = await self.client(MARY)
        henry, _ = await self.client(HENRY)
        await tony_seen.next_of("peers", 3)
        self.assertEqual(tony.peers, (Peer(*TONY), Peer(*MARY), Peer(*HENRY)))
        await mary.leave()
        peers = await tony_seen.next_of("peers", 4)
        self.assertEqual(peers, (Peer(*TONY), Peer(*HENRY)))
        # One full LIST after ACK, then deltas only.
        kinds = [type(command).__name__ for command in received]
        self.assertEqual(kinds, ["PeerList", "Presence", "Presence", "Presence"])

    async def test_refused_join_fails_with_code_and_reason(self) -> None:
        await self.client(TONY)
        other, observer = await self.client(("Tony2", TONY[1]), join=False)
        with self.assertRaises(JoinRefused) as raised:
            await other.join()
        self.assertEqual(raised.exception.code, UID_TAKEN)
        self.assertIn("already joined", raised.exception.reason)
        self.assertEqual(observer.of("refused"), [(UID_TAKEN, raised.exception.reason)])
        self.assertFalse(other.joined)

    async def test_messages_arrive_with_type_sender_and_nickname(self) -> None:
        tony, _ = await self.client(TONY)
        mary, mary_seen = await self.client(MARY)
        henry, henry_seen = await self.client(HENRY)
        await mary_seen.next_of("peers", 2)
        tony.send([MARY[1]], "just you")
        tony.send([MARY[1], HENRY[1]], "you two")
        tony.send([], "everyone")
        await mary_seen.next_of("message", 3)
        kinds = [
            (m.kind, m.sender_uid, m.sender_nickname, m.text)
            for m in mary_seen.of("message")
        ]
        self.assertEqual(
            kinds,
            [
                (PRIVATE, TONY[1], "Tony", "just you"),
                (GROUP, TONY[1], "Tony", "you two"),
                (ALL, TONY[1], "Tony", "everyone"),
            ],
        )
        group = await henry_seen.next_of("message")
        self.assertEqual(set(group.to), {MARY[1], HENRY[1]})

    async def test_server_error_is_reported(self) -> None:
        tony, observer = await self.client(TONY)
        tony.send(["nobody@hku.hk"], "hello?")
        code, reason = await observer.next_of("error")
        self.assertEqual(code, UNKNOWN_RECIPIENT)
        self.assertIn("nobody@hku.hk", reason)

    async def test_send_before_join_raises_not_connected(self) -> None:
        client, _ = await self.client(TONY, join=False)
        with self.assertRaises(NotConnected):
            client.send([], "too early")
        idle = ChatClient(reactor, *TONY)
        with self.assertRaises(NotConnected):
            idle.send([], "not even connected")

    async def test_leave_closes_clears_peers_and_reports_requested_loss(self) -> None:
        tony, observer = await self.client(TONY)
        mary, mary_seen = await self.client(MARY)
        await observer.next_of("peers", 2)
        await tony.leave()
        self.assertFalse(tony.connected)
        self.assertEqual(tony.peers, ())
        self.assertEqual(observer.of("peers")[-1], ())
        self.assertEqual(observer.of("lost"), [("we closed the connection", True)])
        self.assertEqual(await mary_seen.next_of("peers", 2), (Peer(*MARY),))

    async def test_server_dropping_connection_is_reported_and_rejoin_works(
        self,
    ) -> None:
        relay = RecordingRelay("127.0.0.1", self.port)
        self.port = await listen_loopback(self, relay)
        tony, observer = await self.client(TONY)
        await observer.next_of("peers")
        relay.connections[0].transport.loseConnection()  # the server side hangs up
        reason, requested = await observer.next_of("lost")
        await settle()
        self.assertEqual(
            observer.of("lost"), [("the server closed the connection", False)]
        )
        self.assertFalse(tony.joined)
        await tony.connect_tcp("127.0.0.1", self.port)
        await tony.join()
        self.assertTrue(tony.joined)
        self.assertEqual(await observer.next_of("joined", 2), None)

    async def test_join_again_after_leave_works(self) -> None:
        tony, observer = await self.client(TONY)
        await tony.leave()
        await tony.connect_tcp("127.0.0.1", self.port)
        await tony.join()
        peers = await observer.next_of("peers", 3)
        self.assertEqual(peers, (Peer(*TONY),))


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
        self.assertEqual(join["CAPS"], ["presence-delta", "history"])
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


class MessageSizeTests(ClientTestMixin, TestCase):
    async def setUp(self) -> None:
        self.port = await start_server(self)

    async def test_message_over_the_default_limit_is_refused_and_nothing_sent(
        self,
    ) -> None:
        tony, _ = await self.client(TONY)
        mary, mary_seen = await self.client(MARY)
        with self.assertRaises(MessageTooLong) as raised:
            tony.send([MARY[1]], "x" * 72_000)
        self.assertIsInstance(raised.exception, ClientError)
        # 65536 bytes, less the SEND object around the text.
        overhead = len(
            '{"CMD":"SEND","MSG":"","TO":["mary@hku.hk"],"FROM":"Tony@hku.hk"}'
        )
        self.assertEqual(
            str(raised.exception),
            f"message too long (72,000 characters, at most {65536 - overhead:,})",
        )
        tony.send([MARY[1]], "x" * (65536 - overhead))  # the longest that fits
        tony.send([MARY[1]], "after")
        await mary_seen.next_of("message", 2)
        texts = [m.text for m in mary_seen.of("message")]
        self.assertEqual([len(t) for t in texts], [65536 - overhead, 5])
        self.assertTrue(tony.joined)

    async def test_the_servers_max_frame_from_ack_is_the_limit(self) -> None:
        room = PickyRoom(max_frame=200)
        self.port = await listen_loopback(self, room)
        tony, _ = await self.client(TONY)
        self.assertEqual(tony.server_max_frame, 200)
        # Original framing (the server does not frame by lines): ASCII
        # escapes count six bytes for "é".
        overhead = len('{"CMD": "SEND", "MSG": "", "TO": [], "FROM": "Tony@hku.hk"}')
        most = (200 - overhead) // 6
        with self.assertRaises(MessageTooLong) as raised:
            tony.send([], "é" * (most + 1))
        self.assertEqual(
            str(raised.exception),
            f"message too long ({most + 1} characters, at most {most})",
        )
        before = bytes(room.peers[0].received)
        tony.send([], "é" * most)
        await wait_until(lambda: room.peers[0].received != before, what="send")


class AuthTests(ClientTestMixin, TestCase):
    async def setUp(self) -> None:
        self.port = await start_server(self, "--auth", "memory:Tony@hku.hk:open sesame")

    async def test_missing_or_wrong_password_fails_with_auth_failed(self) -> None:
        for password in (None, "open says me"):
            client, observer = await self.client(TONY, join=False)
            with self.assertRaises(JoinRefused) as raised:
                await client.join(password)
            self.assertEqual(raised.exception.code, AUTH_FAILED)
            self.assertEqual(observer.of("refused")[0][0], AUTH_FAILED)
            await client.leave()

    async def test_right_password_joins(self) -> None:
        client, observer = await self.client(TONY, join=False)
        await client.join("open sesame")
        self.assertTrue(client.joined)
        self.assertEqual(await observer.next_of("peers"), (Peer(*TONY),))
