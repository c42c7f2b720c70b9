"""ChatClient over TLS (muca.client.endpoint): the server's certificate checked
against a CA file, and what the client says when it refuses one."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from muca.client.errors import ClientError
from tests.support import start_server
from tests.support.client import (
    MARY,
    TONY,
    RecordingObserver,
    make_certificates,
    temp_folder,
    tls_listen,
)


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

    async def refused_line(self, **certificate: Any) -> tuple[str, RecordingObserver]:
        """Join a server with this certificate from our CA; the refusal's line."""
        files = make_certificates(temp_folder(self) / "evil", **certificate)
        port = await start_server(self, listen=tls_listen(files))
        observer = RecordingObserver()
        client = ChatClient(reactor, *TONY, observer=observer)
        self.addCleanup(client.leave)
        with self.assertRaises(ClientError) as raised:
            await client.connect_tcp("127.0.0.1", port, tls=True, ca_file=files["ca"])
            await client.join()
        self.assertFalse(client.joined)
        self.assertFalse(client.connected)
        self.assertEqual(observer.of("joined"), [])
        return str(raised.exception), observer

    async def test_certificate_without_subject_alt_name_is_refused(self) -> None:
        line, observer = await self.refused_line(names=[], subject="evil.example.com")
        self.assertEqual(
            line,
            "connection closed before JOIN was answered: TLS failed: the server's"
            " certificate is not for 127.0.0.1 (it has no subjectAltName, only"
            " CN=evil.example.com)",
        )
        self.assertEqual(len(observer.of("lost")), 1)

    async def test_certificate_naming_another_host_is_refused(self) -> None:
        line, _ = await self.refused_line(names=["evil.example.com", "10.9.9.9"])
        self.assertEqual(
            line,
            "connection closed before JOIN was answered: TLS failed: the server's"
            " certificate is not for 127.0.0.1 (it names evil.example.com, 10.9.9.9)",
        )

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
