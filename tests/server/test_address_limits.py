"""Connection caps by address and the default connection cap: the pure parts
of ``muca.server.limits``, with the exact reasons a refused peer is told."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from muca.server.limits import (
    ConnectionCounter,
    TokenBucket,
    default_max_connections,
    is_loopback,
)

SERVER_BUSY = "the server has too many connections; try again later"


class DefaultMaxConnectionsTests(SynchronousTestCase):
    def test_sixty_four_descriptors_are_kept_back(self) -> None:
        self.assertEqual(default_max_connections(1024), 960)
        self.assertEqual(default_max_connections(66), 2)

    def test_a_tiny_descriptor_limit_still_allows_one_connection(self) -> None:
        self.assertEqual(default_max_connections(65), 1)
        self.assertEqual(default_max_connections(64), 1)
        self.assertEqual(default_max_connections(3), 1)


class LoopbackTests(SynchronousTestCase):
    def test_this_machine_in_every_spelling_is_loopback(self) -> None:
        for address in ("127.0.0.1", "127.200.3.4", "::1", "::ffff:127.0.0.1"):
            with self.subTest(address=address):
                self.assertIs(is_loopback(address), True)

    def test_other_addresses_and_no_address_are_not(self) -> None:
        for address in (None, "", "10.0.0.1", "::2", "::ffff:10.0.0.1", "host"):
            with self.subTest(address=address):
                self.assertIs(is_loopback(address), False)


class PerAddressCapTests(SynchronousTestCase):
    def test_refusal_names_the_address_and_counts_nothing(self) -> None:
        counter = ConnectionCounter(max_per_address=2)
        self.assertIsNone(counter.admit("10.0.0.1"))
        self.assertIsNone(counter.admit("10.0.0.1"))
        self.assertEqual(
            counter.admit("10.0.0.1"), "too many connections from 10.0.0.1"
        )
        self.assertEqual((counter.count("10.0.0.1"), counter.total), (2, 2))
        # Another address has its own allowance.
        self.assertIsNone(counter.admit("10.0.0.2"))
        self.assertEqual((counter.count("10.0.0.2"), counter.total), (1, 3))

    def test_a_released_connection_makes_room_for_one_more(self) -> None:
        counter = ConnectionCounter(max_per_address=1)
        self.assertIsNone(counter.admit("10.0.0.1"))
        counter.release("10.0.0.1")
        self.assertEqual((counter.count("10.0.0.1"), counter.total), (0, 0))
        self.assertIsNone(counter.admit("10.0.0.1"))
        self.assertEqual(counter.count("10.0.0.1"), 1)

    def test_exempt_loopback_lets_this_machine_past_the_cap(self) -> None:
        counter = ConnectionCounter(max_per_address=1, exempt_loopback=True)
        for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
            self.assertIsNone(counter.admit(address))
            self.assertIsNone(counter.admit(address))
            self.assertEqual(counter.count(address), 2)
        self.assertIsNone(counter.admit("10.0.0.1"))
        self.assertEqual(
            counter.admit("10.0.0.1"), "too many connections from 10.0.0.1"
        )

    def test_without_the_exemption_loopback_is_capped_too(self) -> None:
        counter = ConnectionCounter(max_per_address=1)
        self.assertIsNone(counter.admit("127.0.0.1"))
        self.assertEqual(
            counter.admit("127.0.0.1"), "too many connections from 127.0.0.1"
        )

    def test_connections_without_an_address_count_only_in_the_total(self) -> None:
        counter = ConnectionCounter(max_total=3, max_per_address=1)
        self.assertIsNone(counter.admit(None))
        self.assertIsNone(counter.admit(None))
        self.assertEqual((counter.count(None), counter.total), (0, 2))
        counter.release(None)
        self.assertEqual(counter.total, 1)


class TotalCapTests(SynchronousTestCase):
    def test_the_last_slot_is_given_then_the_server_is_busy(self) -> None:
        counter = ConnectionCounter(max_total=2)
        self.assertIsNone(counter.admit("10.0.0.1"))
        self.assertIsNone(counter.admit(None))
        self.assertEqual(counter.admit("10.0.0.2"), SERVER_BUSY)
        self.assertEqual(counter.admit(None), SERVER_BUSY)
        self.assertEqual((counter.total, counter.count("10.0.0.2")), (2, 0))
        counter.release("10.0.0.1")
        self.assertIsNone(counter.admit("10.0.0.2"))

    def test_the_total_cap_holds_for_loopback_too(self) -> None:
        counter = ConnectionCounter(max_total=1, exempt_loopback=True)
        self.assertIsNone(counter.admit("127.0.0.1"))
        self.assertEqual(counter.admit("127.0.0.1"), SERVER_BUSY)


class TokenBucketBoundaryTests(SynchronousTestCase):
    def test_nonsense_settings_are_refused_saying_why(self) -> None:
        for rate, burst in ((0.0, 5), (-1.0, 5), (1.0, 0)):
            with self.subTest(rate=rate, burst=burst):
                with self.assertRaises(ValueError) as caught:
                    TokenBucket(rate, burst, Clock())
                self.assertEqual(
                    str(caught.exception),
                    "a token bucket needs a positive rate and burst",
                )

    def test_a_token_due_by_the_clock_is_given_despite_float_rounding(self) -> None:
        clock = Clock()
        bucket = TokenBucket(1.0, 1, clock)
        self.assertTrue(bucket.take())
        self.assertFalse(bucket.take())
        # A hair short of one token: float steps of a clock can leave that.
        clock.advance(1.0 - 1e-9)
        self.assertTrue(bucket.take())
        self.assertFalse(bucket.take())

    def test_wait_says_when_the_next_token_is_due(self) -> None:
        clock = Clock()
        bucket = TokenBucket(4.0, 2, clock)
        self.assertEqual(bucket.wait(), 0.0)
        self.assertTrue(bucket.take())
        self.assertTrue(bucket.take())
        self.assertEqual(bucket.wait(), 0.25)
        clock.advance(0.125)
        self.assertEqual(bucket.wait(), 0.125)
        clock.advance(10)
        self.assertEqual(bucket.wait(), 0.0)
        # A full bucket holds burst tokens, no more.
        self.assertEqual([bucket.take() for _ in range(3)], [True, True, False])
