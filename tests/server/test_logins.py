"""Password guessing slowed down: muca.server.logins on a fake clock, the
server in memory, and a real server over loopback."""

from __future__ import annotations

import json
import time
from itertools import pairwise

from twisted.cred import strcred
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.server.auth import make_portal
from muca.server.logins import LoginThrottle
from tests.support import (
    OKAY,
    TIMEOUT,
    MemoryServer,
    RawClient,
    join,
    send,
    start_server,
)

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
USERS = "memory:tony@hku.hk:tonys-secret:mary@hku.hk:marys-secret"


class LoginThrottleTests(SynchronousTestCase):
    """The policy alone, on a fake clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.throttle = LoginThrottle(self.clock, first=0.25, cap=16.0)

    def fail(self, *keys: str) -> float:
        return self.throttle.refused(keys)

    def test_a_first_failure_is_answered_at_once(self) -> None:
        self.assertEqual(self.fail("a", "b"), 0.0)
        self.assertEqual(self.throttle.failures("a"), 1)

    def test_each_failure_doubles_the_next_refusals_wait_up_to_the_cap(self) -> None:
        waits = []
        for _ in range(11):
            waits.append(self.fail("a"))
            self.clock.advance(waits[-1])
        self.assertEqual(waits, [0, 0.25, 0.5, 1, 2, 4, 8, 16, 16, 16, 16])

    def test_the_wait_runs_from_the_last_refusal(self) -> None:
        self.fail("a")
        self.clock.advance(0.2)
        self.assertAlmostEqual(self.fail("a"), 0.05)
        self.clock.advance(0.05 + 0.6)
        self.assertEqual(self.fail("a"), 0.0)

    def test_guesses_at_once_under_one_key_queue_up(self) -> None:
        # Eight connections from one address guessing together: each
        # refusal waits behind the one before, capped.
        waits = [self.fail("address:1", f"connection:{n}") for n in range(8)]
        self.assertEqual(waits, [0, 0.25, 0.75, 1.75, 3.75, 7.75, 15.75, 16])

    def test_a_refusal_waits_for_the_longest_of_its_keys(self) -> None:
        for _ in range(3):
            self.clock.advance(self.fail("uid:tony", "address:1"))
        self.fail("address:2")
        self.assertEqual(self.fail("uid:tony", "address:2"), 1.0)
        self.clock.advance(1.0)
        self.assertEqual(self.fail("address:3", "uid:mary"), 0.0)

    def test_never_longer_than_the_cap_however_many_failures(self) -> None:
        for _ in range(10_000):
            self.fail("uid:tony")
        self.assertEqual(self.fail("uid:tony"), 16.0)

    def test_failures_are_forgotten_one_per_quiet_period(self) -> None:
        for _ in range(5):
            self.clock.advance(self.fail("a"))
        self.assertEqual(self.throttle.failures("a"), 5)
        self.clock.advance(self.throttle.quiet)  # 64 s with a 16 s cap
        self.assertEqual(self.throttle.failures("a"), 4)
        self.clock.advance(self.throttle.quiet * 4)
        self.assertEqual(self.throttle.failures("a"), 0)
        self.assertEqual(self.fail("a"), 0.0)

    def test_forgotten_keys_and_the_oldest_past_the_cap_are_dropped(self) -> None:
        throttle = LoginThrottle(self.clock, first=1, cap=2, max_records=3)
        for key in ("a", "b", "c", "d"):
            throttle.refused([key])
            self.clock.advance(0.1)
        self.assertEqual(len(throttle), 3)
        self.assertEqual(throttle.failures("a"), 0)
        throttle.forget("b")
        self.assertEqual(throttle.failures("b"), 0)
        self.clock.advance(throttle.quiet)  # c and d decay to nothing
        throttle.refused(["e"])
        self.assertEqual(len(throttle), 1)

    def test_nonsense_settings_are_refused(self) -> None:
        for first, cap in ((0, 1), (-1, 1), (2, 1)):
            with self.assertRaises(ValueError):
                LoginThrottle(self.clock, first=first, cap=cap)


class InMemoryLoginTests(SynchronousTestCase):
    """The throttle as the server applies it, on a fake clock."""

    def setUp(self) -> None:
        portal = make_portal([strcred.makeChecker(USERS)])
        self.server = MemoryServer(portal=portal, rate=None, join_timeout=None)
        self.addCleanup(self.server.stop)

    def guess(self, peer, times: int, uid: str = TONY[1]) -> None:
        for i in range(times):
            peer.send_json(join(f"G{i}", uid, PASS=f"guess{i}"))

    def test_frames_behind_a_slowed_refusal_stay_queued_then_go_on(self) -> None:
        mary = self.server.connect("10.0.0.9")
        mary.send_json(join(*MARY, PASS="marys-secret"))
        mary.take()
        tony = self.server.connect("10.0.0.1")
        self.guess(tony, 4)
        tony.send_json(join(*TONY, PASS="tonys-secret"))
        tony.send_json(send("made it", [MARY[1]], TONY[1]))
        (first,) = tony.take()
        self.assertEqual(first["CODE"], "AUTH_FAILED")
        self.assertEqual(tony.transport.producerState, "paused")
        waited = [0.25, 0.5, 1.0]  # the refusals after one, two, three failures
        for delay in waited:
            self.server.clock.advance(delay - 0.01)
            self.assertEqual(tony.take(), [])
            self.server.clock.advance(0.01)
            answer = tony.take()
            self.assertEqual(answer[0]["CODE"], "AUTH_FAILED")
        # The right password after the last refusal: in at once.
        self.assertEqual(answer[1], OKAY)
        texts = [m["MSG"] for m in mary.take() if m["CMD"] == "MSG"]
        self.assertEqual(texts, ["made it"])
        self.assertEqual(tony.transport.producerState, "producing")
        self.assertEqual(self.server.clock.getDelayedCalls(), [])

    def test_a_new_connection_from_the_guessing_address_is_slowed_too(self) -> None:
        guesser = self.server.connect("10.0.0.1")
        self.guess(guesser, 1, uid="nobody")
        guesser.take()
        again = self.server.connect("10.0.0.1")
        self.guess(again, 1, uid="somebody")
        self.assertEqual(again.take(), [])
        self.server.clock.advance(0.25)
        self.assertEqual(again.take()[0]["CODE"], "AUTH_FAILED")
        # The right password from there is not slowed.
        again.send_json(join(*TONY, PASS="tonys-secret"))
        self.assertEqual(again.take()[0], OKAY)

    def test_the_right_user_is_never_slowed_by_guesses_at_its_id(self) -> None:
        # Decided (issue 22): guesses at a user id slow the guesses, and the
        # right password gets in at once; the guesser learns nothing it
        # would not learn by getting in.
        guessers = [self.server.connect(f"10.0.1.{n}") for n in range(8)]
        for guesser in guessers:
            self.guess(guesser, 1)
        # The last guess waits behind the others' refusals (the user id's).
        self.assertEqual(guessers[-1].take(), [])
        tony = self.server.connect("10.0.0.2")
        tony.send_json(join(*TONY, PASS="tonys-secret"))
        self.assertEqual(tony.take()[0], OKAY)
        self.server.clock.advance(16)
        self.assertEqual(guessers[-1].take()[0]["CODE"], "AUTH_FAILED")

    def test_a_join_waiting_at_shutdown_is_answered(self) -> None:
        tony = self.server.connect("10.0.0.1")
        self.guess(tony, 2)
        tony.send_json(join(*TONY, PASS="tonys-secret"))
        tony.send_json(send("after the join", [], TONY[1]))
        tony.take()
        self.server.factory.close_all()
        # The guess whose refusal waits, the JOIN and the SEND behind it.
        refused, ack, error = tony.take()
        for answer in (refused, ack):
            self.assertEqual(
                (answer["CMD"], answer["TYPE"], answer["CODE"]),
                ("ACK", "FAIL", "SERVER_SHUTDOWN"),
            )
        self.assertEqual(
            (error["CMD"], error["CODE"], error["REF"]),
            ("ERROR", "SERVER_SHUTDOWN", "SEND"),
        )
        self.assertTrue(tony.closed_by_server)
        self.server.clock.advance(1)  # the refusal's timer was cancelled
        self.assertEqual(tony.take(), [])

    def test_a_closed_connection_is_forgotten(self) -> None:
        guesser = self.server.connect("10.0.0.1")
        self.guess(guesser, 1, uid="nobody")
        guesser.take()
        key = guesser.protocol._connection_key
        self.assertEqual(self.server.factory.logins.failures(key), 1)
        guesser.lose()
        self.assertEqual(self.server.factory.logins.failures(key), 0)

    def test_login_delay_zero_turns_it_off(self) -> None:
        portal = make_portal([strcred.makeChecker(USERS)])
        server = MemoryServer(portal=portal, rate=None, login_delay=None)
        self.addCleanup(server.stop)
        peer = server.connect()
        self.guess(peer, 100)
        peer.send_json(join(*TONY, PASS="tonys-secret"))
        self.assertEqual(peer.take()[-2], OKAY)


async def connect_from(testcase: TestCase, host: str, port: int) -> RawClient:
    """A :class:`RawClient` whose connection comes from ``host`` (a loopback
    address of its own: the server sees another address)."""
    endpoint = TCP4ClientEndpoint(
        reactor, "127.0.0.1", port, timeout=TIMEOUT, bindAddress=(host, 0)
    )
    client = await connectProtocol(endpoint, RawClient())
    testcase.addCleanup(client.close)
    return client


class LoopbackLoginTests(TestCase):
    async def test_guesses_on_one_connection_are_refused_later_and_later(
        self,
    ) -> None:
        # Small delays keep the test short: 0.05 s doubling to 0.4 s.
        port = await start_server(
            self, "--auth", USERS, "--login-delay", "0.05", "--login-delay-max", "0.4"
        )
        mary = await connect_from(self, "127.0.0.3", port)
        guesser = await connect_from(self, "127.0.0.2", port)
        guesses = 8
        guesser.send(
            b"".join(
                json.dumps(join("Tony", TONY[1], PASS=f"guess{i}")).encode() + b"\n"
                for i in range(guesses)
            )
            + json.dumps(join(*TONY, PASS="tonys-secret")).encode()
            + b"\n"
        )
        arrived = []
        for _ in range(guesses):
            (answer,) = await guesser.next_objects(1)
            arrived.append(time.monotonic())
            self.assertEqual(answer["CODE"], "AUTH_FAILED")
            if len(arrived) == 2:
                # Meanwhile another address logs in as another user, at once:
                # before the guesser's next answer.
                mary.send_json(join(*MARY, PASS="marys-secret"))
                self.assertEqual(await mary.next_object(), OKAY)
                self.assertEqual(guesser.pending(), [])
        self.assertEqual(await guesser.next_object(), OKAY)
        arrived.append(time.monotonic())
        gaps = [later - earlier for earlier, later in pairwise(arrived)]
        expected = [0.05, 0.1, 0.2, 0.4, 0.4, 0.4, 0.4]
        for gap, least in zip(gaps, expected, strict=False):
            # Timer slack: a delayed call may fire a little early.
            self.assertGreater(gap, least * 0.9, gaps)
        # The right password after them: answered at once, not slowed.
        self.assertLess(gaps[-1], 0.05, gaps)
