"""Roster updates through the server (in memory): bursts coalesced into
fewer LISTs, every view true once the server is quiet, PRESENCE deltas."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from tests.support import OKAY, OKAY_V2, MemoryPeer, MemoryServer, join, roster, send

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")


class RosterCoalescingTests(SynchronousTestCase):
    """With a list interval, bursts of changes become fewer LISTs."""

    def setUp(self) -> None:
        self.server = MemoryServer(list_interval=1.0)
        self.addCleanup(self.server.stop)

    def test_burst_of_joins_ends_with_the_true_list(self) -> None:
        observer = self.server.connect()
        observer.send_json(join("Obs", "obs"))
        self.assertEqual(observer.take(), [OKAY, roster(("Obs", "obs"))])
        names = [(f"U{i}", f"u{i}") for i in range(10)]
        peers = []
        for nickname, uid in names:
            peer = self.server.connect()
            peer.send_json(join(nickname, uid))
            peers.append(peer)
            self.server.clock.advance(0.05)
        self.server.clock.advance(1.0)
        lists = [o for o in observer.take() if o["CMD"] == "LIST"]
        self.assertLess(len(lists), 10)
        self.assertEqual(lists[-1], roster(("Obs", "obs"), *names))
        for peer in peers:
            got = peer.take()
            self.assertEqual(got[0], OKAY)
            self.assertEqual(got[-1], roster(("Obs", "obs"), *names))

    def test_interval_grows_with_a_large_room(self) -> None:
        self.server = MemoryServer(list_interval=1.0, list_interval_members=2)
        self.addCleanup(self.server.stop)
        observer = self.server.connect()
        observer.send_json(join("Obs", "obs"))
        for i in range(5):
            self.server.connect().send_json(join(f"U{i}", f"u{i}"))
        self.server.clock.advance(10.0)
        self.server.clock.advance(10.0)  # a quiet spell
        observer.take()
        # Eight members by then, two per interval: after an update, the next
        # one waits 4 s instead of 1 s.
        self.server.connect().send_json(join(*TONY))
        self.assertEqual(observer.take()[-1]["CMD"], "LIST")
        self.server.connect().send_json(join(*MARY))
        self.server.clock.advance(3.9)
        self.assertEqual(observer.take(), [])
        self.server.clock.advance(0.1)
        self.assertEqual(observer.take()[-1]["DATA"][-1]["UID"], MARY[1])

    def test_newcomer_gets_its_list_before_a_message_from_a_peer(self) -> None:
        tony = self.server.connect()
        tony.send_json(join(*TONY))
        self.assertEqual(tony.take(), [OKAY, roster(TONY)])
        self.server.clock.advance(0.1)
        mary = self.server.connect()
        mary.send_json(join(*MARY))  # its LIST is due in 0.9 s
        tony.send_json(send("welcome", [MARY[1]], TONY[1]))
        got = mary.take()
        self.assertEqual(got[:2], [OKAY, roster(TONY, MARY)])
        self.assertEqual(got[2]["MSG"], "welcome")
        self.assertEqual(tony.take(), [roster(TONY, MARY)])

    def test_newcomers_first_words_follow_the_list_that_names_it(self) -> None:
        tony = self.server.connect()
        tony.send_json(join(*TONY))
        tony.take()
        self.server.clock.advance(0.1)
        mary = self.server.connect()
        mary.send_json(join(*MARY))
        mary.send_json(send("hi", [], MARY[1]))
        got = tony.take()
        self.assertEqual(got[0], roster(TONY, MARY))
        self.assertEqual(got[1]["MSG"], "hi")

    def test_stopping_the_factory_cancels_a_pending_update(self) -> None:
        peer = self.server.connect()
        peer.send_json(join(*TONY))
        self.server.stop()
        self.assertEqual(self.server.clock.getDelayedCalls(), [])


class RosterConvergenceTests(SynchronousTestCase):
    def test_random_joins_leaves_and_messages_end_with_true_views(self) -> None:
        """Whatever the churn, once the server is quiet every joined peer's
        view (LIST replaces it; PRESENCE removes LEFT, then appends JOINED)
        is the room, in join order."""
        rng = random.Random(11)
        for interval in (0, 0.05):
            server = MemoryServer(list_interval=interval)
            self.addCleanup(server.stop)
            views: dict[MemoryPeer, list[dict[str, str]]] = {}
            joined: dict[MemoryPeer, str] = {}
            for step in range(300):
                roll = rng.random()
                if roll < 0.4 or not joined:
                    peer = server.connect()
                    caps = ["presence-delta"] if rng.random() < 0.5 else []
                    uid = f"u{rng.randrange(12)}"
                    peer.send_json(join(f"N{step}", uid, V=2, CAPS=caps))
                    views[peer] = []
                    joined[peer] = uid
                elif roll < 0.7:
                    peer = rng.choice(list(joined))
                    peer.lose()
                    del joined[peer], views[peer]
                else:
                    peer = rng.choice(list(joined))
                    peer.send_json(send("x", [], joined[peer]))
                server.clock.advance(rng.choice([0, 0.01, 0.03]))
                for peer in list(views):
                    self.apply(peer, views)
            server.clock.advance(1)
            truth = [m.entry for m in server.factory.room.members()]
            members = {m.connection for m in server.factory.room.members()}
            checked = 0
            for peer in list(views):
                self.apply(peer, views)
                if peer.protocol in members:
                    self.assertEqual(views[peer], truth)
                    checked += 1
            self.assertGreater(checked, 3)

    def apply(self, peer: MemoryPeer, views: dict[MemoryPeer, list]) -> None:
        """Apply what the peer received to its view."""
        for obj in peer.take():
            if obj["CMD"] == "LIST":
                views[peer] = obj["DATA"]
            elif obj["CMD"] == "PRESENCE":
                left = set(obj["LEFT"])
                views[peer] = [e for e in views[peer] if e["UID"] not in left]
                views[peer] += obj["JOINED"]


class PresenceTests(SynchronousTestCase):
    def test_presence_client_gets_one_list_then_deltas(self) -> None:
        server = MemoryServer()
        self.addCleanup(server.stop)
        tony = server.connect()
        tony.send_json(join(*TONY))
        self.assertEqual(tony.take(), [OKAY, roster(TONY)])
        pat = server.connect()
        pat.send_json(join("Pat", "pat", V=2, CAPS=["presence-delta"]))
        self.assertEqual(pat.take(), [OKAY_V2, roster(TONY, ("Pat", "pat"))])
        mary = server.connect()
        mary.send_json(join(*MARY))
        self.assertEqual(
            pat.take(),
            [
                {
                    "CMD": "PRESENCE",
                    "JOINED": [{"UN": "Mary", "UID": MARY[1]}],
                    "LEFT": [],
                }
            ],
        )
        tony.lose()
        self.assertEqual(
            pat.take(), [{"CMD": "PRESENCE", "JOINED": [], "LEFT": [TONY[1]]}]
        )
        self.assertEqual(mary.take()[-1], roster(("Pat", "pat"), MARY))
