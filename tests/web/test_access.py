"""Who may use the web listener, over real HTTP requests: the Origin rule of
the WebSocket (a DNS-rebinding page, another scheme or port, ``--web-host``,
a wildcard bind, a TLS listener) and the addresses ``/metrics`` answers."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.web.access import DEFAULT_METRICS_FROM, AddressList, parse_networks
from tests.support import OKAY, TIMEOUT, join, roster, start_service
from tests.support.client import make_certificates, temp_folder
from tests.support.http import get_from
from tests.support.websocket import (
    WebSocketClient,
    connect_websocket,
    start_web_server,
)

MARY = ("Mary", "mary@hku.hk")


class OriginRuleTests(TestCase):
    async def test_a_rebinding_page_is_refused_whatever_its_host_header(
        self,
    ) -> None:
        _, port = await start_web_server(self)
        # evil.example made to resolve to this server: the browser sends
        # the evil name in Host and Origin alike (the Host rule answers
        # 421); with a forged local Host, the Origin rule still refuses.
        for host, status in ((f"evil.example:{port}", 421), (f"localhost:{port}", 403)):
            rebound = await connect_websocket(
                self, port, origin=f"http://evil.example:{port}", host=host
            )
            self.assertEqual(rebound.status, status, host)

    async def test_a_rebinding_page_cannot_read_the_page_or_metrics(self) -> None:
        _, port = await start_web_server(
            self,
            "--web-host",
            "chat.example.org",
            "--web-origin",
            "https://proxy.example",
        )
        for path in ("/", "/healthz", "/metrics"):
            status, body = await get_from(
                self, port, path, "127.0.0.1", host=f"evil.example:{port}"
            )
            self.assertEqual(status, 421, path)
            self.assertIn(b"does not answer to that name", body)
        for host in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            "Chat.Example.org",
            "proxy.example",
        ):
            status, _ = await get_from(self, port, "/healthz", "127.0.0.1", host=host)
            self.assertEqual(status, 200, host)

    async def test_the_scheme_and_port_must_be_the_listeners(self) -> None:
        _, port = await start_web_server(self)
        for origin in (
            f"https://127.0.0.1:{port}",
            f"ws://127.0.0.1:{port}",
            f"http://127.0.0.1:{port + 1}",
            "http://127.0.0.1",
            f"http://127.0.0.2:{port}",
            "null",
        ):
            client = await connect_websocket(self, port, origin=origin)
            self.assertEqual(client.status, 403, origin)

    async def test_own_address_localhost_and_web_hosts_are_allowed(self) -> None:
        _, port = await start_web_server(
            self,
            "--web-host",
            "Chat.Example.org",
            "--web-origin",
            "https://proxy.example",
        )
        for origin in (
            f"http://127.0.0.1:{port}",
            f"http://localhost:{port}/",
            f"http://chat.example.org:{port}",
            "https://proxy.example",
        ):
            client = await connect_websocket(self, port, origin=origin)
            self.assertEqual(client.status, 101, origin)
        for origin in (
            f"https://chat.example.org:{port}",
            f"http://chat.example.org:{port + 1}",
            f"http://other.example.org:{port}",
        ):
            client = await connect_websocket(self, port, origin=origin)
            self.assertEqual(client.status, 403, origin)
        # An allowed page chats.
        client = await connect_websocket(self, port, origin=f"http://localhost:{port}")
        client.send_json(join(*MARY))
        self.assertEqual(await client.next_objects(2), [OKAY, roster(MARY)])

    async def test_a_wildcard_listener_allows_the_address_it_was_reached_by(
        self,
    ) -> None:
        _, web = await start_service(
            self, "--listen", "tcp:0:interface=127.0.0.1", "--web", "tcp:0"
        )
        port = web.getHost().port
        reached = await connect_websocket(
            self, port, origin=f"http://127.0.0.2:{port}", address="127.0.0.2"
        )
        self.assertEqual(reached.status, 101)
        elsewhere = await connect_websocket(
            self, port, origin=f"http://127.0.0.3:{port}", address="127.0.0.2"
        )
        self.assertEqual(elsewhere.status, 403)

    async def test_a_tls_listener_allows_https_pages_only(self) -> None:
        files = make_certificates(temp_folder(self) / "tls")
        _, web = await start_service(
            self,
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--web",
            f"ssl:0:interface=127.0.0.1:privateKey={files['key']}"
            f":certKey={files['cert']}",
        )
        port = web.getHost().port
        with open(files["ca"], "rb") as ca:
            trust = Certificate.loadPEM(ca.read())
        statuses = {}
        for scheme in ("https", "http"):
            endpoint = SSL4ClientEndpoint(
                reactor,
                "127.0.0.1",
                port,
                optionsForClientTLS("127.0.0.1", trust),
                timeout=TIMEOUT,
            )
            origin = f"{scheme}://localhost:{port}"
            client = WebSocketClient(f"localhost:{port}", origin)
            await connectProtocol(endpoint, client)
            self.addCleanup(client.close)
            statuses[scheme] = await client.answered.addTimeout(TIMEOUT, reactor)
        self.assertEqual(statuses, {"https": 101, "http": 403})


class MetricsAccessTests(TestCase):
    async def test_metrics_answer_every_loopback_address_by_default(self) -> None:
        _, port = await start_web_server(self)
        for source in ("127.0.0.1", "127.0.0.2"):
            status, body = await get_from(self, port, "/metrics", source)
            self.assertEqual(status, 200, source)
            self.assertIn(b"\nmuca_members 0\n", body)

    async def test_metrics_from_limits_who_reads_them(self) -> None:
        _, port = await start_web_server(self, "--metrics-from", "127.0.0.1/32")
        status, body = await get_from(self, port, "/metrics", "127.0.0.2")
        self.assertEqual(
            (status, body),
            (403, b"/metrics is not served to 127.0.0.2 (see --metrics-from)\n"),
        )
        status, _ = await get_from(self, port, "/metrics", "127.0.0.1")
        self.assertEqual(status, 200)
        # The rest of the site is for everyone.
        status, body = await get_from(self, port, "/healthz", "127.0.0.2")
        self.assertEqual((status, body), (200, b"ok\n"))


class AddressListTests(SynchronousTestCase):
    def test_the_default_is_loopback_only(self) -> None:
        default = AddressList(parse_networks(DEFAULT_METRICS_FROM))
        for address in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", None):
            self.assertIs(default.allows(address), True, address)
        for address in ("10.0.0.1", "192.0.2.7", "::2", "::ffff:10.0.0.1", "host"):
            self.assertIs(default.allows(address), False, address)

    def test_networks_and_single_addresses(self) -> None:
        allowed = AddressList(parse_networks("10.0.0.0/8, 192.0.2.7,2001:db8::/32"))
        for address in ("10.1.2.3", "192.0.2.7", "2001:db8::5", "::ffff:10.0.0.9"):
            self.assertIs(allowed.allows(address), True, address)
        for address in ("11.0.0.1", "192.0.2.8", "127.0.0.1", "2001:db9::1"):
            self.assertIs(allowed.allows(address), False, address)

    def test_a_wrong_entry_is_named(self) -> None:
        with self.assertRaises(ValueError) as raised:
            parse_networks("10.0.0.0/8,intranet")
        self.assertEqual(
            str(raised.exception), "'intranet' is not an IP address or network"
        )
