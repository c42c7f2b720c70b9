"""Rooms on a server with a history (SQLite): the broadcasts of rooms other
than the default one are delivered in id order with the rest, and kept with
their room, so that a client without rooms (in the default room alone) is
never replayed another room's."""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from muca.store.sqlite import SQLiteStore
from tests.support import TIMEOUT, MemoryPeer, MemoryServer, join, send
from tests.support.server import HENRY, MARY, TONY
from tests.support.twistd import fresh_directory


async def messages(peer: MemoryPeer, count: int) -> list[dict[str, Any]]:
    """The next ``count`` objects other than ``ROOMS`` and ``LIST`` that
    ``peer`` gets (the store writes on a thread of its own)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < count:
        got += [o for o in peer.take() if o["CMD"] not in ("ROOMS", "LIST")]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out with {got!r}")
        await deferLater(reactor, 0.01)
    return got


class RoomsWithAStoreTests(TestCase):
    async def test_room_broadcasts_are_delivered_in_order_and_kept_per_room(
        self,
    ) -> None:
        store = SQLiteStore(os.path.join(fresh_directory(self), "h.db"))
        await store.open()
        self.addCleanup(store.close)
        server = MemoryServer(store=store)
        self.addCleanup(server.stop)
        tony, mary, henry = server.connect(), server.connect(), server.connect()
        tony.send_json(join(*TONY, CAPS=["rooms"]))
        mary.send_json(join(*MARY, CAPS=["rooms"]))
        henry.send_json(join(*HENRY))
        for peer in (tony, mary):
            peer.send_json({"CMD": "ENTER", "ROOM": "dev"})
        for peer in (tony, mary, henry):
            peer.take()
        tony.send_json({**send("in dev", [], TONY[1]), "ROOM": "dev"})
        tony.send_json(send("in general", [], TONY[1]))
        tony.send_json({**send("in dev again", [], TONY[1]), "ROOM": "dev"})
        got = await messages(mary, 3)
        self.assertEqual(
            [(o["MSG"], o["ROOM"]) for o in got],
            [("in dev", "dev"), ("in general", "general"), ("in dev again", "dev")],
        )
        self.assertEqual(sorted(o["ID"] for o in got), [o["ID"] for o in got])
        self.assertEqual([o["MSG"] for o in await messages(henry, 1)], ["in general"])
        # A newcomer without rooms: the default room's replay only.
        peter = server.connect()
        peter.send_json(join("Peter", "peter@hku.hk", CAPS=["history"]))
        replay = await messages(peter, 3)
        self.assertEqual(
            [(o["CMD"], o.get("MSG"), o.get("HIST")) for o in replay],
            [("ACK", None, None), ("MSG", "in general", True), ("HISTORY", None, None)],
        )
        # The store has the room's broadcasts, with their room.
        page = await store.latest(None, False, 50, rooms=["dev"])
        self.assertEqual(
            [(m.room, m.text) for m in page.messages],
            [("dev", "in dev"), ("dev", "in dev again")],
        )
