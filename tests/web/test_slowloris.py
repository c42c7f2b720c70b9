"""The web listener under a slowloris attack: half-sent HTTP requests that
dribble a byte at a time are closed at the request deadline (bytes do not
extend it), count toward ``--max-per-address`` with the chat connections
(the excess is refused at once), and meanwhile chat joins and ``/healthz``
still work. A WebSocket is counted once, before and after its upgrade."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from tests.support import OKAY, TIMEOUT, connect, join, roster
from tests.support.http import (
    HALF_SENT,
    HEALTHZ,
    connect_from,
    open_http,
    until,
)
from tests.support.websocket import connect_websocket, start_web_service
from tests.web.test_gateway import get

#: The attackers' address (the chat client and /healthz use 127.0.0.1).
ATTACKER = "127.0.0.2"
DEADLINE = 3.0
MARY = ("Mary", "mary@hku.hk")
TONY = ("Tony", "tony@hku.hk")


class SlowlorisTests(TestCase):
    async def test_half_sent_requests_are_capped_and_closed_at_the_deadline(
        self,
    ) -> None:
        factory, tcp_port, web_port = await start_web_service(
            self, "--max-per-address", "5", "--web-request-timeout", str(DEADLINE)
        )
        attackers = [
            await open_http(self, web_port, HALF_SENT, ATTACKER, dribble=True)
            for _ in range(20)
        ]
        # The 15 over the cap are answered 503 and closed at once.
        await until(lambda: sum(a.closed_at is not None for a in attackers) >= 15)
        refused = [a for a in attackers if a.closed_at is not None]
        self.assertEqual(len(refused), 15)
        for client in refused:
            self.assertTrue(
                client.received.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"),
                client.received,
            )
            self.assertIn(b"too many connections from 127.0.0.2", client.received)
            self.assertLess(client.closed_at - client.opened_at, DEADLINE)
        held = [a for a in attackers if a.closed_at is None]
        self.assertEqual(len(held), 5)
        self.assertEqual(factory.counter.count(ATTACKER), 5)

        # Meanwhile a chat user joins on the TCP port and /healthz answers.
        mary = await connect(self, tcp_port)
        mary.send_json(join(*MARY))
        self.assertEqual(await mary.next_objects(2), [OKAY, roster(MARY)])
        response, body = await get(web_port, "/healthz")
        self.assertEqual((response.code, body), (200, b"ok\n"))
        self.assertEqual([a for a in held if a.closed_at is not None], [])

        # The held ones kept sending bytes, and are closed at the deadline
        # all the same, told why.
        await defer.gatherResults([a.closed for a in held]).addTimeout(
            DEADLINE + TIMEOUT, reactor
        )
        for client in held:
            lasted = client.closed_at - client.opened_at
            self.assertGreater(client.sent, 5)
            self.assertGreaterEqual(lasted, DEADLINE - 0.1)
            self.assertLess(lasted, DEADLINE + 5)
            self.assertTrue(
                client.received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"),
                client.received,
            )
        # Their counts are released: the address may connect again.
        self.assertEqual(factory.counter.count(ATTACKER), 0)
        again = await open_http(self, web_port, HEALTHZ, ATTACKER)
        await again.closed.addTimeout(DEADLINE + TIMEOUT, reactor)
        self.assertTrue(again.received.startswith(b"HTTP/1.1 200 OK\r\n"))

    async def test_an_idle_keep_alive_connection_is_closed_at_the_deadline(
        self,
    ) -> None:
        _, _, web_port = await start_web_service(
            self, "--web-request-timeout", str(DEADLINE)
        )
        client = await open_http(self, web_port, HEALTHZ, "127.0.0.1")
        await client.closed.addTimeout(DEADLINE + TIMEOUT, reactor)
        assert client.answered_at is not None and client.closed_at is not None
        ok, _, late = client.received.partition(b"ok\n")
        self.assertTrue(ok.startswith(b"HTTP/1.1 200 OK\r\n"), client.received)
        # The response was not the end: the connection stayed open, idle,
        # until the next request's deadline.
        self.assertTrue(late.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), late)
        self.assertGreaterEqual(client.closed_at - client.answered_at, DEADLINE - 0.1)


class SharedCountTests(TestCase):
    async def test_a_websocket_counts_once_with_the_chat_connections(self) -> None:
        factory, tcp_port, web_port = await start_web_service(
            self, "--max-per-address", "2"
        )
        mary = await connect_websocket(self, web_port, source=ATTACKER)
        self.assertEqual(mary.status, 101)
        mary.send_json(join(*MARY))
        self.assertEqual(await mary.next_objects(2), [OKAY, roster(MARY)])
        self.assertEqual(factory.counter.count(ATTACKER), 1)
        tony = await connect_from(self, tcp_port, ATTACKER)
        tony.send_json(join(*TONY))
        self.assertEqual(await tony.next_objects(2), [OKAY, roster(MARY, TONY)])
        self.assertEqual(factory.counter.count(ATTACKER), 2)
        # Full: a web connection is refused at once, a chat one at its JOIN.
        page = await open_http(self, web_port, HEALTHZ, ATTACKER)
        await page.closed
        self.assertTrue(page.received.startswith(b"HTTP/1.1 503 "), page.received)
        third = await connect_from(self, tcp_port, ATTACKER)
        third.send_json(join("Olive", "olive@hku.hk"))
        refusal = await third.next_object()
        self.assertEqual((refusal["TYPE"], refusal["CODE"]), ("FAIL", "SERVER_FULL"))
        await third.closed()
        # Mary leaves: her one count is released, and another WebSocket joins.
        await mary.close()
        await tony.next_object()
        self.assertEqual(factory.counter.count(ATTACKER), 1)
        olive = await connect_websocket(self, web_port, source=ATTACKER)
        self.assertEqual(olive.status, 101)
        olive.send_json(join("Olive", "olive@hku.hk"))
        ack, _ = await olive.next_objects(2)
        self.assertEqual(ack, OKAY)
        await olive.close()
        await tony.close()
        await until(lambda: factory.counter.total == 0)
        self.assertEqual(
            (factory.counter.count(ATTACKER), factory.counter.total), (0, 0)
        )
