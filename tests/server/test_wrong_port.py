"""A browser (or curl) pointed at the chat port gets one HTTP line naming
the browser client's URL, then the connection closes; MUCA peers are not
taken for one."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.server.wrong_port import BrowserClient, is_http_request
from tests.support import OKAY, TIMEOUT, connect, join, roster, start_service
from tests.support.http import HttpClient

MARY = ("Mary", "mary@hku.hk")
BROWSER_REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:40452\r\nUser-Agent: Mozilla/5.0\r\n"
    b"Accept: text/html\r\n\r\n"
)


async def ask(port: int, request: bytes = BROWSER_REQUEST) -> bytes:
    """Send ``request`` to the chat port; everything received until it closes."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)
    client = await connectProtocol(endpoint, HttpClient(request))
    await client.closed.addTimeout(TIMEOUT, reactor)
    return client.received


def answer(line: str) -> bytes:
    return (
        b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Connection: close\r\n\r\n" + line.encode() + b"\r\n"
    )


class ChatPortTests(TestCase):
    async def test_a_browser_on_the_chat_port_is_pointed_to_the_web_listener(
        self,
    ) -> None:
        tcp, web = await start_service(
            self,
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--web",
            "tcp:0:interface=127.0.0.1",
        )
        url = f"http://127.0.0.1:{web.getHost().port}/"
        line = "This is a MUCA chat port, not a web page: the browser client is at "
        self.assertEqual(await ask(tcp.getHost().port), answer(line + url))
        # A HEAD (curl -I) too; and the chat goes on for MUCA peers.
        head = await ask(tcp.getHost().port, b"HEAD / HTTP/1.0\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.0 400 Bad Request\r\n"))
        mary = await connect(self, tcp.getHost().port)
        mary.send_json(join(*MARY))
        self.assertEqual(
            await mary.next_objects(2), [OKAY, roster(("Mary", "mary@hku.hk"))]
        )

    async def test_a_wildcard_web_listener_is_named_by_the_address_reached(
        self,
    ) -> None:
        tcp, web = await start_service(
            self, "--listen", "tcp:0:interface=127.0.0.1", "--web", "tcp:0"
        )
        reply = await ask(tcp.getHost().port)
        self.assertIn(f"http://127.0.0.1:{web.getHost().port}/\r\n".encode(), reply)

    async def test_without_a_web_listener_the_answer_says_so(self) -> None:
        (tcp,) = await start_service(self, "--listen", "tcp:0:interface=127.0.0.1")
        self.assertEqual(
            await ask(tcp.getHost().port),
            answer(
                "This is a MUCA chat port, not a web page; this server has no "
                "browser client."
            ),
        )

    async def test_http_after_a_first_frame_is_only_bad_json(self) -> None:
        (tcp,) = await start_service(self, "--listen", "tcp:0:interface=127.0.0.1")
        mary = await connect(self, tcp.getHost().port)
        mary.send_json(join(*MARY))
        await mary.next_objects(2)
        mary.send(b"GET / HTTP/1.1\r\n")
        error = await mary.next_object()
        self.assertEqual((error["CMD"], error["CODE"]), ("ERROR", "BAD_JSON"))
        self.assertIsNone(mary.lost)


class RecognitionTests(SynchronousTestCase):
    def test_request_lines_and_not_muca_frames(self) -> None:
        for data in (b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1", b"PRI * HTTP/2.0"):
            self.assertIs(is_http_request(data), True, data)
        for data in (
            b'{"CMD":"JOIN"}',
            b"\x00\x00\x00\x02{}",
            b" {",
            b"GET",
            b"get / x",
        ):
            self.assertIs(is_http_request(data), False, data)

    def test_the_url_of_a_listener(self) -> None:
        self.assertEqual(
            BrowserClient.of(False, "0.0.0.0", 40080, None).url(),
            "http://localhost:40080/",
        )
        self.assertEqual(
            BrowserClient.of(True, "::", 40443, None).url("::1"), "https://[::1]:40443/"
        )
        self.assertEqual(
            BrowserClient.of(False, "0.0.0.0", 80, "chat.example.org").url("10.0.0.1"),
            "http://chat.example.org:80/",
        )
