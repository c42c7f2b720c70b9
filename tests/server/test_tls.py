"""The server over TLS: ``--listen ssl:…`` and ``--port ssl:…`` through
endpoints, with a throwaway certificate made by the test."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import reactor
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import TestCase

from muca.service import tap
from tests.support import (
    OKAY,
    TIMEOUT,
    RawClient,
    connect,
    join,
    roster,
    send,
    start_server,
)
from tests.support.client import make_certificates, temp_folder, tls_listen

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")


class TlsTestCase(TestCase):
    """A TLS server on loopback with a certificate made for this test."""

    def setUp(self) -> None:
        self.files = make_certificates(temp_folder(self) / "tls")

    async def tls_client(self, port: int) -> RawClient:
        """A raw client over TLS that verifies the server with the test CA."""
        ca = Certificate.loadPEM(Path(self.files["ca"]).read_bytes())
        endpoint = wrapClientTLS(
            optionsForClientTLS("127.0.0.1", trustRoot=ca),
            TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT),
        )
        client = await connectProtocol(endpoint, RawClient())
        self.addCleanup(client.close)
        return client

    async def joined(self, port: int, who: tuple[str, str]) -> RawClient:
        client = await self.tls_client(port)
        client.send_json(join(*who))
        self.assertEqual(await client.next_object(), OKAY)
        return client


class TlsListenTests(TlsTestCase):
    async def test_two_tls_clients_chat_through_listen_ssl(self) -> None:
        port = await start_server(self, listen=tls_listen(self.files))
        tony = await self.joined(port, TONY)
        await tony.next_object()
        mary = await self.joined(port, MARY)
        self.assertEqual(await mary.next_object(), roster(TONY, MARY))
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))
        mary.send_json(send("über TLS", [TONY[1]], MARY[1]))
        message = await tony.next_object()
        self.assertEqual((message["TYPE"], message["MSG"]), ("PRIVATE", "über TLS"))

    def test_port_option_takes_an_ssl_description(self) -> None:
        description = tls_listen(self.files)
        options = tap.Options()
        options.parseOptions(["--port", description, "--web", "none"])
        self.assertEqual(options["listen"], [f"{description}:backlog=1024"])
        self.assertEqual(len(list(tap.makeService(options))), 1)

    async def test_plain_bytes_on_the_tls_port_do_not_disturb_others(self) -> None:
        port = await start_server(self, listen=tls_listen(self.files))
        tony = await self.joined(port, TONY)
        await tony.next_object()
        plain = await connect(self, port)
        plain.send_json(join(*MARY))
        plain.send(b"\x00\xff" * 1000 + b"\n")
        await plain.closed()
        self.assertEqual(plain.objects, [])
        mary = await self.joined(port, MARY)
        await mary.next_object()
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))

    async def test_slow_tls_consumer_is_dropped_and_the_others_go_on(self) -> None:
        port = await start_server(
            self,
            "--rate-limit",
            "0",
            "--max-outbound",
            str(256 * 1024),
            listen=tls_listen(self.files),
        )
        tony = await self.joined(port, TONY)
        mary = await self.joined(port, MARY)
        henry = await self.joined(port, HENRY)
        for client in (tony, mary, henry):
            while (await client.next_object()) != roster(TONY, MARY, HENRY):
                pass
        tony.transport.pauseProducing()  # Tony stops reading
        count = 120
        for i in range(count):
            mary.send_json(send(f"{i:04d}" + "x" * 32_000, [], MARY[1]))
        received = await henry.next_objects(count + 1, timeout=20)
        messages = [obj["MSG"][:4] for obj in received if obj["CMD"] == "MSG"]
        self.assertEqual(messages, [f"{i:04d}" for i in range(count)])
        self.assertIn(roster(MARY, HENRY), received)
        self.assertEqual(await mary.next_object(timeout=20), roster(MARY, HENRY))
        tony.transport.resumeProducing()  # to see the close, one must read
        await tony.closed(timeout=20)
        # Dropped, not delivered late: the buffer was thrown away.
        self.assertLess(len(tony.received), count * 32_000)
