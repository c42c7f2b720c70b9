"""Servers that ChatClient cannot reach, or that never answer: the errors and
time limits of connecting and joining."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from muca.client.errors import ConnectFailed
from tests.support.client import (
    TONY,
    RecordingObserver,
    closed_port,
    listen_loopback,
    settle,
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
        elapsed = time.monotonic() - started
        self.assertTrue(2.0 <= elapsed < 3.0, elapsed)
        self.assertIn("did not answer JOIN within 2 s", str(raised.exception))
        await settle()
        self.assertFalse(client.connected)

    async def test_giving_up_on_join_reports_that_we_closed_once(self) -> None:
        port = await listen_loopback(self, Factory.forProtocol(Protocol))
        observer = RecordingObserver()
        client = ChatClient(reactor, *TONY, observer=observer, timeout=0.3)
        await client.connect_tcp("127.0.0.1", port)
        with self.assertRaises(ConnectFailed):
            await client.join()
        await observer.next_of("lost")
        await settle()
        self.assertEqual(
            observer.of("lost"),
            [("we closed the connection: no answer to JOIN", True)],
        )
