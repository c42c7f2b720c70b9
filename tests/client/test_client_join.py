"""Joining with ChatClient: the answer to JOIN, the peer list and the presence
deltas that keep it, and a refused join."""

from __future__ import annotations

from muca.protocol.messages import (
    PRESENCE_DELTA,
    UID_TAKEN,
    JoinRefused,
    Peer,
)
from tests.support import split_objects
from tests.support.client import (
    HENRY,
    MARY,
    TONY,
    ClientTestCase,
    listen_loopback,
)
from tests.support.servers import RecordingRelay


class JoinTests(ClientTestCase):
    async def test_join_reports_joined_and_peer_list(self) -> None:
        client, observer = await self.client(TONY)
        self.assertTrue(client.joined)
        peers = await observer.next_of("peers")
        self.assertEqual(peers, (Peer(*TONY),))
        self.assertEqual(observer.events[0], ("joined", None))
        self.assertEqual(client.peers, (Peer(*TONY),))

    async def test_client_asks_for_presence_deltas_and_applies_them(self) -> None:
        # Tony's connection goes through a relay that keeps what each side
        # wrote: what he asked for, and what the server sent him.
        relay = RecordingRelay("127.0.0.1", self.port)
        tony, tony_seen = await self.client(
            TONY, port=await listen_loopback(self, relay)
        )
        await tony_seen.next_of("peers")
        mary, _ = await self.client(MARY)
        henry, _ = await self.client(HENRY)
        await tony_seen.next_of("peers", 3)
        self.assertEqual(tony.peers, (Peer(*TONY), Peer(*MARY), Peer(*HENRY)))
        await mary.leave()
        peers = await tony_seen.next_of("peers", 4)
        self.assertEqual(peers, (Peer(*TONY), Peer(*HENRY)))
        join, rest = split_objects(relay.sent.decode())
        self.assertIn(PRESENCE_DELTA, join[0]["CAPS"])
        # One full LIST after ACK, then deltas only.
        received, rest = split_objects(relay.received.decode())
        self.assertEqual(rest, "")
        commands = [o["CMD"] for o in received]
        self.assertEqual(commands[0], "ACK")
        rosters = [c for c in commands if c in ("LIST", "PRESENCE")]
        self.assertEqual(rosters, ["LIST", "PRESENCE", "PRESENCE", "PRESENCE"])

    async def test_refused_join_fails_with_code_and_reason(self) -> None:
        await self.client(TONY)
        other, observer = await self.client(("Tony2", TONY[1]), join=False)
        with self.assertRaises(JoinRefused) as raised:
            await other.join()
        self.assertEqual(raised.exception.code, UID_TAKEN)
        self.assertIn("already joined", raised.exception.reason)
        self.assertEqual(observer.of("refused"), [(UID_TAKEN, raised.exception.reason)])
        self.assertFalse(other.joined)
