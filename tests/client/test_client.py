"""Tests of muca.client.client: the client API against real servers on loopback."""

from __future__ import annotations

import json
import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from muca.client.client import (
    ChatClient,
    ClientError,
    ConnectFailed,
    NotConnected,
    ReceivedMessage,
)
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
from tests.support import start_server, start_service
from tests.support.client import (
    RecordingObserver,
    closed_port,
    listen_loopback,
    make_certificates,
    settle,
    temp_folder,
    tls_listen,
)

TONY = ("Tony", "Tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")


class ClientTestMixin:
    """Connects clients to a server and closes them after the test."""

    port: int

    async def client(
        self, user: tuple[str, str], timeout: float = 2.0, join: bool = True
    ) -> tuple[ChatClient, RecordingObserver]:
        observer = RecordingObserver()
        client = ChatClient(reactor, user[0], user[1], observer, timeout=timeout)
        self.addCleanup(client.leave)  # type: ignore[attr-defined]
        await client.connect_tcp("127.0.0.1", self.port)
        if join:
            await client.join()
        return client, observer


class ClientAgainstServerTests(ClientTestMixin, TestCase):
    async def setUp(self) -> None:
        (listening,) = await start_service(
            self, "--listen", "tcp:0:interface=127.0.0.1"
        )
        self.port = listening.getHost().port
        self.server = listening.factory

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
        self.assertEqual(observer.of("lost"), [("connection closed", True)])
        self.assertEqual(await mary_seen.next_of("peers", 2), (Peer(*MARY),))

    async def test_server_dropping_connection_is_reported_and_rejoin_works(
        self,
    ) -> None:
        tony, observer = await self.client(TONY)
        await observer.next_of("peers")
        # The server hangs up (as on a shutdown; a native client's frame
        # over the limit no longer makes it do so).
        for connection in list(self.server.connections):
            connection.close()
        reason, requested = await observer.next_of("lost")
        self.assertFalse(requested)
        self.assertIn("closed", reason)
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


class UnreachableServerTests(TestCase):
    async def test_closed_port_fails_with_clear_error(self) -> None:
        port = await closed_port()
        client = ChatClient(reactor, *TONY)
        with self.assertRaises(ConnectFailed) as raised:
            await client.connect_tcp("127.0.0.1", port)
        self.assertEqual(
            str(raised.exception), f"cannot reach 127.0.0.1:{port}: connection refused"
        )
        self.assertFalse(client.connected)

    async def test_connect_that_never_completes_fails_after_time_limit(self) -> None:
        class NeverEndpoint:
            def connect(self, factory: Any) -> defer.Deferred[Any]:
                return defer.Deferred(lambda d: None)

        client = ChatClient(reactor, *TONY, timeout=0.2)
        started = time.monotonic()
        with self.assertRaises(ConnectFailed) as raised:
            await client.connect(NeverEndpoint(), "somewhere")
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        self.assertEqual(
            str(raised.exception), "cannot reach somewhere: no answer within 0.2 s"
        )

    async def test_silent_server_fails_join_after_two_seconds(self) -> None:
        port = await listen_loopback(self, Factory.forProtocol(Protocol))
        client = ChatClient(reactor, *TONY)
        await client.connect_tcp("127.0.0.1", port)
        started = time.monotonic()
        with self.assertRaises(ConnectFailed) as raised:
            await client.join()
        elapsed = time.monotonic() - started
        self.assertTrue(2.0 <= elapsed < 3.0, elapsed)
        self.assertIn("did not answer JOIN within 2 s", str(raised.exception))
        await settle()
        self.assertFalse(client.connected)


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
        self.assertTrue(sent.endswith(b"\n"))
        join = json.loads(sent)
        self.assertEqual(join["V"], 2)
        self.assertEqual(join["CAPS"], ["presence-delta"])
        self.assertEqual((join["UN"], join["UID"]), TONY)


class TlsTests(TestCase):
    async def setUp(self) -> None:
        self.files = make_certificates(temp_folder(self) / "tls")
        self.port = await start_server(self, listen=tls_listen(self.files))

    async def test_client_verifies_the_server_and_chats_over_tls(self) -> None:
        observers = []
        for user in (TONY, MARY):
            observer = RecordingObserver()
            client = ChatClient(reactor, *user, observer=observer)
            self.addCleanup(client.leave)
            await client.connect_tcp(
                "127.0.0.1", self.port, tls=True, ca_file=self.files["ca"]
            )
            await client.join()
            observers.append((client, observer))
        (tony, _), (_, mary_seen) = observers
        tony.send([MARY[1]], "secret handshake")
        message = await mary_seen.next_of("message")
        self.assertEqual(message.text, "secret handshake")

    async def test_certificate_from_another_ca_is_refused(self) -> None:
        other = make_certificates(temp_folder(self) / "tls")
        observer = RecordingObserver()
        client = ChatClient(reactor, *TONY, observer=observer)
        self.addCleanup(client.leave)
        with self.assertRaises(ClientError) as raised:
            await client.connect_tcp(
                "127.0.0.1", self.port, tls=True, ca_file=other["ca"]
            )
            await client.join()
        self.assertEqual(
            str(raised.exception),
            "connection closed before JOIN was answered:"
            " TLS failed: certificate verify failed",
        )
        self.assertFalse(client.joined)

    async def test_unusable_ca_file_is_a_clear_error(self) -> None:
        bad = temp_folder(self) / "ca.pem"
        bad.write_text("not a certificate")
        client = ChatClient(reactor, *TONY)
        with self.assertRaises(ClientError) as raised:
            await client.connect_tcp("127.0.0.1", self.port, tls=True, ca_file=str(bad))
        self.assertEqual(
            str(raised.exception), f"CA file {bad} is not a PEM certificate"
        )
        missing = str(bad) + ".missing"
        with self.assertRaises(ClientError) as raised:
            await client.connect_tcp("127.0.0.1", self.port, tls=True, ca_file=missing)
        self.assertEqual(
            str(raised.exception),
            f"cannot read CA file {missing}: No such file or directory",
        )

    async def test_plain_tcp_client_cannot_join_a_tls_server(self) -> None:
        client = ChatClient(reactor, *TONY, timeout=0.5)
        self.addCleanup(client.leave)
        await client.connect_tcp("127.0.0.1", self.port)
        with self.assertRaises(ClientError):
            await client.join()


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
