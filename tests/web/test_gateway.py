"""The web listener end to end over loopback: the chat protocol over
WebSocket (a real ``wsproto`` client) beside TCP and original-framing peers,
bad input, the Origin check, a slow WebSocket consumer, and the HTTP pages
(``/``, ``/healthz``, ``/metrics``)."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from muca.server.context import NodeContext
from muca.server.node import ChatFactory
from muca.web.gateway import CONTENT_SECURITY_POLICY, make_site
from tests.support import (
    OKAY,
    OriginalClient,
    connect,
    join,
    msg,
    roster,
    send,
    strip_ts,
)
from tests.support.websocket import (
    connect_websocket,
    start_web_server,
    start_web_service,
)

MARY = ("Mary", "mary@hku.hk")
TONY = ("Tony", "tony@hku.hk")
OLIVE = ("Olive", "olive@hku.hk")


async def get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[Any, bytes]:
    """GET ``http://127.0.0.1:port/path``: the response and its body."""
    agent = Agent(reactor)
    raw = Headers({k: [v] for k, v in (headers or {}).items()})
    response = await agent.request(
        b"GET", f"http://127.0.0.1:{port}{path}".encode(), raw
    )
    return response, await readBody(response)


def header(response: Any, name: str) -> str | None:
    """One response header, or None."""
    values = response.headers.getRawHeaders(name)
    return values[0] if values else None


class ChatOverWebSocketTests(TestCase):
    async def test_websocket_tcp_and_original_peers_chat_in_all_three_ways(
        self,
    ) -> None:
        tcp_port, web_port = await start_web_server(self)
        mary = await connect_websocket(self, web_port)
        self.assertEqual(mary.status, 101)
        mary.send_json(join(*MARY))
        self.assertEqual(await mary.next_objects(2), [OKAY, roster(MARY)])
        tony = await connect(self, tcp_port)
        tony.send_json(join(*TONY))
        self.assertEqual(await tony.next_objects(2), [OKAY, roster(MARY, TONY)])
        self.assertEqual(await mary.next_object(), roster(MARY, TONY))
        olive = await connect(self, tcp_port, OriginalClient)
        olive.send_json(join(*OLIVE))
        everyone = roster(MARY, TONY, OLIVE)
        self.assertEqual(await olive.next_objects(2), [OKAY, everyone])
        self.assertEqual(await mary.next_object(), everyone)
        self.assertEqual(await tony.next_object(), everyone)

        # Broadcast from the browser side.
        mary.send_json(send("hello all <b>", [], MARY[1]))
        expected = msg("ALL", "hello all <b>", MARY[1])
        self.assertEqual(strip_ts(await tony.next_object()), expected)
        self.assertEqual(strip_ts(await olive.next_object()), expected)
        # Private from TCP to the WebSocket peer.
        tony.send_json(send("just you, Mary ✓", [MARY[1]], TONY[1]))
        self.assertEqual(
            strip_ts(await mary.next_object()),
            msg("PRIVATE", "just you, Mary ✓", TONY[1]),
        )
        # Group from the original-framing peer to both others.
        olive.send_json(send("group", [MARY[1], TONY[1]], OLIVE[1]))
        group = msg("GROUP", "group", OLIVE[1], [MARY[1], TONY[1]])
        self.assertEqual(strip_ts(await mary.next_object()), group)
        self.assertEqual(strip_ts(await tony.next_object()), group)
        # One object per text message, with no newline.
        self.assertEqual(len(mary.messages), len(mary.objects))
        self.assertFalse([m for m in mary.messages if "\n" in m])

        # A WebSocket peer leaving is seen by the others as any leave.
        await mary.close()
        self.assertEqual(await tony.next_object(), roster(TONY, OLIVE))
        self.assertEqual(await olive.next_object(), roster(TONY, OLIVE))

    async def test_bad_messages_get_errors_and_the_connection_goes_on(
        self,
    ) -> None:
        _, web_port = await start_web_server(self, "--max-frame", "200")
        mary = await connect_websocket(self, web_port)
        mary.send_bytes(b'{"CMD": "JOIN"}')
        mary.send_text("this is not JSON")
        mary.send_text("[1, 2]")
        mary.send_text('{"CMD": "JOIN", "UN": "Mary", "UID": "' + "m" * 300 + '"}')
        mary.send_text("é" * 101)  # 101 characters, 202 bytes
        errors = await mary.next_objects(5)
        self.assertEqual(
            [(e["CMD"], e["CODE"]) for e in errors],
            [("ERROR", "BAD_JSON")] * 3 + [("ERROR", "FRAME_TOO_LONG")] * 2,
        )
        self.assertIn("binary", errors[0]["REASON"])
        self.assertIn("200 bytes", errors[3]["REASON"])
        # Still open, and a good JOIN works.
        mary.send_json(join(*MARY))
        self.assertEqual(await mary.next_objects(2), [OKAY, roster(MARY)])

    async def test_a_version_2_join_keeps_one_object_per_text_message(
        self,
    ) -> None:
        _, web_port = await start_web_server(self)
        mary = await connect_websocket(self, web_port)
        mary.send_json(join(*MARY, V=2, CAPS=["presence-delta"]))
        ack, roster_now = await mary.next_objects(2)
        self.assertEqual((ack["CMD"], ack["TYPE"]), ("ACK", "OKAY"))
        self.assertEqual(roster_now, roster(MARY))
        self.assertEqual(len(mary.messages), 2)

    async def test_a_long_message_is_not_buffered_past_the_limit(self) -> None:
        factory, _, web_port = await start_web_service(self, "--max-frame", "1000")
        mary = await connect_websocket(self, web_port)
        # 4 MB of a message that is not finished yet, then a ping: its pong
        # says the server has read them.
        mary.send_text("x" * 4_000_000, finished=False)
        await mary.ping()
        (peer,) = factory.connections
        self.assertLessEqual(peer.websocket._textBuffer.held(), 1000)
        mary.send_text("the end", finished=True)
        (error,) = await mary.next_objects(1)
        self.assertEqual(error["CODE"], "FRAME_TOO_LONG")
        mary.send_json(join(*MARY))
        self.assertEqual(await mary.next_objects(2), [OKAY, roster(MARY)])


class OriginTests(TestCase):
    async def test_foreign_origin_is_refused_own_and_allowed_ones_accepted(
        self,
    ) -> None:
        _, port = await start_web_server(
            self, "--web-origin", "https://chat.example.org/"
        )
        foreign = await connect_websocket(self, port, origin="http://evil.example")
        self.assertEqual(foreign.status, 403)
        # The same host on another port is another origin.
        other_port = await connect_websocket(
            self, port, origin=f"http://127.0.0.1:{port + 1}"
        )
        self.assertEqual(other_port.status, 403)
        own = await connect_websocket(self, port, origin=f"http://127.0.0.1:{port}")
        allowed = await connect_websocket(self, port, origin="https://Chat.Example.org")
        no_origin = await connect_websocket(self, port)
        for client in (own, allowed, no_origin):
            self.assertEqual(client.status, 101)
        # A refused handshake never reached the chat: an accepted one did.
        own.send_json(join(*MARY))
        self.assertEqual(await own.next_objects(2), [OKAY, roster(MARY)])


class SlowConsumerTests(TestCase):
    async def test_a_websocket_peer_that_stops_reading_is_dropped(self) -> None:
        tcp_port, web_port = await start_web_server(
            self, "--max-outbound", "100000", "--rate-limit", "0"
        )
        slow = await connect_websocket(self, web_port)
        slow.send_json(join(*MARY))
        await slow.next_objects(2)
        # It reads no more, with a small receive window.
        slow.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.transport.pauseProducing()
        olive = await connect_websocket(self, web_port)
        olive.send_json(join(*OLIVE))
        await olive.next_objects(2)
        tony = await connect(self, tcp_port)
        tony.send_json(join(*TONY))
        await tony.next_objects(2)
        await olive.next_object()
        count = 300
        for i in range(count):
            tony.send_json(send(f"{i:03d}" + "x" * 30000, [], TONY[1]))
        # The reader gets every message and then the roster without Mary.
        # The reader gets every message, and the roster without Mary when
        # she is dropped (however far the messages have got by then).
        received = await olive.next_objects(count + 1, timeout=30)
        self.assertEqual(
            [m["MSG"][:3] for m in received if m["CMD"] == "MSG"],
            [f"{i:03d}" for i in range(count)],
        )
        self.assertEqual(
            [m for m in received if m["CMD"] != "MSG"], [roster(OLIVE, TONY)]
        )
        self.assertEqual(await tony.next_object(timeout=30), roster(OLIVE, TONY))
        # Reading again, it finds its connection closed by the server.
        slow.transport.resumeProducing()
        await slow.closed(timeout=30)
        _, metrics = await get(web_port, "/metrics")
        self.assertIn(b"\nmuca_slow_consumers_total 1\n", metrics)


class PagesTests(TestCase):
    async def listen(self, factory: ChatFactory) -> int:
        """Serve the web site of ``factory`` on loopback for this test."""
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            make_site(factory)
        )
        self.addCleanup(port.stopListening)
        return port.getHost().port

    async def test_the_page_carries_its_policy_and_cache_rules(self) -> None:
        _, port = await start_web_server(self)
        response, body = await get(port, "/")
        self.assertEqual(response.code, 200)
        self.assertIn(b"<html", body.lower())
        self.assertEqual(
            header(response, "content-security-policy"), CONTENT_SECURITY_POLICY
        )
        # The page's WebSocket may go to its own host and port only: no
        # ws: or wss: to anywhere (tests/web/test_page.py: it still connects).
        self.assertEqual(
            CONTENT_SECURITY_POLICY,
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
            "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        self.assertEqual(header(response, "x-content-type-options"), "nosniff")
        self.assertEqual(header(response, "cache-control"), "no-cache")
        etag = header(response, "etag")
        self.assertIsNotNone(etag)
        self.assertIsNotNone(header(response, "last-modified"))
        again, body = await get(port, "/", {"If-None-Match": etag})
        self.assertEqual((again.code, body), (304, b""))
        script, _ = await get(port, "/app.js")
        self.assertEqual(script.code, 200)
        self.assertEqual(header(script, "cache-control"), "max-age=60")
        self.assertIn("javascript", header(script, "content-type"))
        missing, _ = await get(port, "/nothing-here.js")
        self.assertEqual(missing.code, 404)

    async def test_healthz_is_ok_while_joins_are_accepted_and_503_when_stopping(
        self,
    ) -> None:
        factory = ChatFactory(NodeContext.alone(reactor))
        port = await self.listen(factory)
        response, body = await get(port, "/healthz")
        self.assertEqual((response.code, body), (200, b"ok\n"))
        factory.stopping = True
        response, body = await get(port, "/healthz")
        self.assertEqual((response.code, body), (503, b"shutting down\n"))

    async def test_metrics_count_members_connections_and_messages(self) -> None:
        tcp_port, web_port = await start_web_server(self)
        mary = await connect_websocket(self, web_port)
        mary.send_json(join(*MARY))
        await mary.next_objects(2)
        tony = await connect(self, tcp_port)
        tony.send_json(join(*TONY))
        await tony.next_objects(2)
        await mary.next_object()
        tony.send_json(send("hi", [], TONY[1]))
        await mary.next_object()
        response, body = await get(web_port, "/metrics")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            header(response, "content-type"), "text/plain; version=0.0.4; charset=utf-8"
        )
        samples = dict(
            line.rsplit(" ", 1)
            for line in body.decode().splitlines()
            if not line.startswith("#")
        )
        self.assertEqual(samples["muca_members"], "2")
        self.assertEqual(samples['muca_connections{transport="tcp"}'], "1")
        self.assertEqual(samples['muca_connections{transport="websocket"}'], "1")
        self.assertEqual(samples["muca_messages_accepted_total"], "1")
        self.assertEqual(samples["muca_messages_delivered_total"], "1")
        self.assertEqual(samples["muca_slow_consumers_total"], "0")
        # What the two clients received (ACKs, LISTs, the message), but the
        # HTTP handshake's answer.
        handshake = mary.received.index(b"\r\n\r\n") + 4
        self.assertEqual(
            int(samples["muca_bytes_out_total"]),
            len(mary.received) - handshake + len(tony.received),
        )
        self.assertIn("# TYPE muca_messages_delivered_total counter", body.decode())
