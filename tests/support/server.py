"""A fresh in-memory server per test (``ServerTestCase``); the server tests' users."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    OKAY,
    MemoryPeer,
    MemoryServer,
    join,
    strip_ts,
)

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")
PETER = ("Peter", "peter@hku.hk")


def without_ts(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects with the optional ``TS`` extension removed."""
    return [strip_ts(obj) for obj in objects]


class ServerTestCase(SynchronousTestCase):
    """A fresh in-memory server per test, and helpers to join peers."""

    def setUp(self) -> None:
        self.server = MemoryServer()
        self.addCleanup(self.server.stop)

    def joined(self, *who: tuple[str, str]) -> list[MemoryPeer]:
        """Join each (nickname, uid) on its own connection, in order; drain them."""
        peers = []
        for nickname, uid in who:
            peer = self.server.connect()
            peer.send_json(join(nickname, uid))
            self.assertEqual(peer.take()[0], OKAY)
            peers.append(peer)
        for peer in peers:
            peer.take()
        return peers

    def assertError(
        self, objects: list[Any], code: str, ref: str | None = None
    ) -> None:
        """Exactly one ERROR with this code (and REF, when given)."""
        self.assertEqual(len(objects), 1, objects)
        (error,) = objects
        self.assertEqual((error["CMD"], error["CODE"]), ("ERROR", code), error)
        self.assertIsInstance(error["REASON"], str)
        self.assertTrue(error["REASON"])
        if ref is not None:
            self.assertEqual(error.get("REF"), ref)
