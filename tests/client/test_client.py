"""Tests of muca.client.client: the client API against real servers on loopback."""

from __future__ import annotations

from typing import Any

from muca.protocol.messages import (
    UID_TAKEN,
    JoinRefused,
    Peer,
)
from tests.support.client import (
    HENRY,
    MARY,
    TONY,
    ClientTestCase,
    listen_loopback,
    settle,
)
from tests.support.servers import RecordingRelay


class ClientAgainstServerTests(ClientTestCase):
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
        await settle()
        self.assertEqual(
            observer.of("lost"), [("the server closed the connection", False)]
        )
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
