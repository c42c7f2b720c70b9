"""Leaving and losing the connection with ChatClient: what the observer hears,
and joining again afterwards."""

from __future__ import annotations

from muca.protocol.messages import Peer
from tests.support.client import (
    MARY,
    TONY,
    ClientTestCase,
    listen_loopback,
)
from tests.support.servers import RecordingRelay


class LeaveTests(ClientTestCase):
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
        self.assertEqual(
            (reason, requested), ("the server closed the connection", False)
        )
        self.assertFalse(tony.joined)
        await tony.connect_tcp("127.0.0.1", self.port)
        await tony.join()
        self.assertTrue(tony.joined)
        self.assertEqual(await observer.next_of("joined", 2), None)
        # Joined again, and the drop was reported once.
        self.assertEqual(
            observer.of("lost"), [("the server closed the connection", False)]
        )

    async def test_join_again_after_leave_works(self) -> None:
        tony, observer = await self.client(TONY)
        await tony.leave()
        await tony.connect_tcp("127.0.0.1", self.port)
        await tony.join()
        peers = await observer.next_of("peers", 3)
        self.assertEqual(peers, (Peer(*TONY),))
