"""Timed bans and mutes on a fake clock: the time left, rounded up, the end
by itself at its time (and only then), an end that passed while the server
was stopped, a new sanction in place of an old one, the timers cancelled at
stop; slow mode's wait and its bounded memory."""

from __future__ import annotations

from typing import Any

from twisted.cred import strcred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from muca.server.auth import make_portal
from muca.server.moderation import SERVER, Moderation, duration_text
from muca.store.base import BAN, MUTE, Sanction
from tests.support import MemoryPeer, MemoryServer, join

START = 1_000_000.0


class TimersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.ended: list[Sanction] = []
        self.moderation = Moderation(self.clock, self.ended.append)

    def sanction(self, kind: str, room: str, seconds: float | None) -> Sanction:
        until = None if seconds is None else int((START + seconds) * 1000)
        return Sanction(kind, room, "bob", until, "ann", "spam")

    def test_a_timed_mute_ends_by_itself_at_its_time(self) -> None:
        mute = self.sanction(MUTE, "maths", 600)
        self.moderation.impose(mute)
        self.assertEqual(self.moderation.muted("maths", "bob"), mute)
        self.assertIsNone(self.moderation.muted("physics", "bob"))
        self.assertIsNone(self.moderation.muted(None, "bob"))
        self.assertEqual(self.moderation.seconds_left(mute), 600)
        self.clock.advance(0.5)
        self.assertEqual(self.moderation.seconds_left(mute), 600)
        self.clock.advance(599.0)
        self.assertEqual(self.moderation.seconds_left(mute), 1)
        self.assertEqual(self.ended, [])
        self.clock.advance(0.5)
        self.assertEqual(self.ended, [mute])
        self.assertIsNone(self.moderation.muted("maths", "bob"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_server_wide_mute_covers_every_room_and_private_messages(self) -> None:
        mute = self.sanction(MUTE, SERVER, None)
        self.moderation.impose(mute)
        for room in ("maths", None):
            self.assertEqual(self.moderation.muted(room, "bob"), mute)
        self.assertIsNone(self.moderation.seconds_left(mute))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lifted_early_and_replaced(self) -> None:
        self.moderation.impose(self.sanction(BAN, "maths", 60))
        longer = self.sanction(BAN, "maths", 3600)
        self.moderation.impose(longer)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(61)
        self.assertEqual(self.moderation.banned("maths", "bob"), longer)
        self.assertEqual(self.moderation.lift(BAN, "maths", "bob"), longer)
        self.assertIsNone(self.moderation.banned("maths", "bob"))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.ended, [])

    def test_load_ends_what_passed_while_stopped_and_stop_cancels(self) -> None:
        over = self.sanction(BAN, SERVER, -5)
        left = self.sanction(MUTE, "maths", 30)
        self.assertEqual(self.moderation.load({"maths": {"cid"}}, [over, left]), [over])
        self.assertTrue(self.moderation.is_moderator("maths", "cid"))
        self.assertIsNone(self.moderation.banned(SERVER, "bob"))
        self.assertEqual(self.moderation.muted("maths", "bob"), left)
        self.moderation.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_slow_mode_wait_and_bounded_times(self) -> None:
        moderation = self.moderation
        self.assertEqual(moderation.slow_wait("maths", 30, "bob"), 0)
        moderation.sent("maths", 30, "bob", 2)
        self.clock.advance(10.2)
        self.assertEqual(moderation.slow_wait("maths", 30, "bob"), 20)
        self.clock.advance(20)
        self.assertEqual(moderation.slow_wait("maths", 30, "bob"), 0)
        for n in range(100):
            moderation.sent("maths", 30, f"u{n}", 2)
            self.clock.advance(31)
        self.assertLessEqual(len(moderation._last_sent["maths"]), 2 * 2 + 17)

    def test_durations_as_a_notice_says_them(self) -> None:
        self.assertEqual(
            [duration_text(s) for s in (600, 3600, 86400 * 2, 90, 1, None)],
            [
                "for 10 minutes",
                "for 1 hour",
                "for 2 days",
                "for 90 seconds",
                "for 1 second",
                "for ever",
            ],
        )

    def test_moderators_named_in_the_store_meanwhile_are_applied(self) -> None:
        moderation = self.moderation
        moderation.load({"maths": {"cid"}}, [])
        moderation.name("maths", "dan", True)  # here, and written meanwhile
        moderation.apply_kept({"maths": {"cid", "dan", "bob"}})
        self.assertEqual(moderation.moderators, {"maths": {"cid", "dan", "bob"}})
        moderation.apply_kept({"physics": {"eve"}})
        self.assertEqual(moderation.moderators, {"physics": {"eve"}})


def _server() -> MemoryServer:
    checker = strcred.makeChecker("memory:ann:pw:bob:pw")
    return MemoryServer(portal=make_portal([checker]), rate=None, login_delay=None)


def _joined(server: MemoryServer, uid: str) -> MemoryPeer:
    peer = server.connect()
    caps = ["rooms", "moderation"]
    peer.send_json(join(uid.title(), uid, PASS="pw", V=2, CAPS=caps))
    peer.send_json({"CMD": "ENTER", "ROOM": "maths"})
    peer.take()
    return peer


def _of(peer: MemoryPeer, cmd: str) -> list[Any]:
    return [obj for obj in peer.take() if obj["CMD"] == cmd]


class NodeClockTests(SynchronousTestCase):
    """A node on a fake clock (no store): a timed mute ends by itself."""

    def test_a_mute_ends_by_itself_and_the_room_hears_of_it(self) -> None:
        server = _server()
        self.addCleanup(server.stop)
        ann, bob = _joined(server, "ann"), _joined(server, "bob")
        ann.take()
        ann.send_json({"CMD": "MUTE", "ROOM": "maths", "UID": "bob", "FOR": 60})
        said = {"CMD": "NOTICE", "ROOM": "maths", "TEXT": "Ann muted Bob for 1 minute"}
        self.assertEqual(_of(bob, "NOTICE"), [said])
        server.clock.advance(59.5)
        bob.send_json(
            {"CMD": "SEND", "MSG": "x", "TO": [], "FROM": "bob", "ROOM": "maths"}
        )
        self.assertEqual(
            [e["REASON"] for e in _of(bob, "ERROR")],
            ["you are muted in the room 'maths' for 1 more second: not delivered"],
        )
        self.assertEqual(_of(ann, "MSG"), [])
        server.clock.advance(0.5)
        over = {"CMD": "NOTICE", "ROOM": "maths", "TEXT": "the mute of Bob is over"}
        self.assertEqual(_of(ann, "NOTICE"), [over])
        bob.send_json(
            {"CMD": "SEND", "MSG": "y", "TO": [], "FROM": "bob", "ROOM": "maths"}
        )
        self.assertEqual([m["MSG"] for m in _of(ann, "MSG")], ["y"])
        self.assertEqual(server.clock.getDelayedCalls(), [])
