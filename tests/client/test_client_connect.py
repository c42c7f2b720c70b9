"""Servers that ChatClient cannot reach, or that never answer: the errors and
time limits of connecting and joining."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.client.client import ChatClient
from muca.client.errors import ConnectFailed
from tests.support.client import (
    TONY,
    RecordingObserver,
    closed_port,
    listen_loopback,
    wait_until,
)


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
        # Not before the 2 s; how much later is up to the machine's load (the
        # 2 s themselves: SilentServerClockTests).
        self.assertGreaterEqual(time.monotonic() - started, 2.0)
        self.assertIn("did not answer JOIN within 2 s", str(raised.exception))
        await wait_until(lambda: not client.connected, what="the client's close")


class SilentServerClockTests(SynchronousTestCase):
    """A server that accepts and never answers, on a fake clock: the JOIN is
    given up at the time limit exactly, and the close is reported once."""

    def connected(self, **options: Any) -> tuple[ChatClient, RecordingObserver]:
        self.clock = Clock()
        self.transport = StringTransportWithDisconnection()
        observer = RecordingObserver()
        client = ChatClient(self.clock, *TONY, observer=observer, **options)
        self.successResultOf(client.connect(SilentEndpoint(self.transport), "silent"))
        return client, observer

    def test_join_fails_at_two_seconds_not_before(self) -> None:
        client, _ = self.connected()
        joining = client.join()
        self.assertIn(b'"CMD":"JOIN"', self.transport.value().replace(b" ", b""))
        self.clock.advance(1.5)
        self.assertNoResult(joining)
        self.assertTrue(client.connected)
        self.clock.advance(0.5)
        failure = self.failureResultOf(joining, ConnectFailed)
        self.assertEqual(str(failure.value), "silent did not answer JOIN within 2 s")
        self.assertFalse(client.connected)

    def test_giving_up_on_join_reports_that_we_closed_once(self) -> None:
        client, observer = self.connected(timeout=0.3)
        joining = client.join()
        self.clock.advance(0.3)
        self.failureResultOf(joining, ConnectFailed)
        self.clock.advance(60)  # no later timer reports it again
        self.assertEqual(
            observer.of("lost"),
            [("we closed the connection: no answer to JOIN", True)],
        )


class SilentEndpoint:
    """Connects at once to a server that never writes: ``transport``
    records what the client sends, and its close reaches the client."""

    def __init__(self, transport: StringTransportWithDisconnection) -> None:
        self.transport = transport

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        protocol = factory.buildProtocol(None)
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)
        return defer.succeed(protocol)
