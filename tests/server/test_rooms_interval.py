"""How often ``ROOMS`` goes out: a newcomer's first at once (before its
first ``LIST``), everyone's refreshed ones no closer than the list interval
times members × rooms / ``rooms_interval_entries`` (a round of them is an
entry per room per member)."""

from __future__ import annotations

from tests.server.test_rooms_protocol import (
    enter,
    entered,
    in_room,
    listing,
    rooms_join,
)
from tests.support import OKAY, MemoryServer, roster
from tests.support.server import MARY, TONY, ServerTestCase


class RoomsIntervalTests(ServerTestCase):
    def setUp(self) -> None:
        # Rounds of ROOMS as far apart as the 1 s list interval times
        # members × rooms / 2.
        self.server = MemoryServer(list_interval=1.0, rooms_interval_entries=2)
        self.addCleanup(self.server.stop)

    def test_a_newcomer_gets_rooms_at_once_the_others_when_due(self) -> None:
        clock = self.server.clock
        tony = self.server.connect()
        tony.send_json(rooms_join(TONY))
        self.assertEqual(
            tony.take(),
            [OKAY, listing(("general", "", 1, True)), in_room(roster(TONY), "general")],
        )
        for name in ("dev", "ops", "qa"):
            tony.send_json(enter(name))
        self.assertEqual(tony.take(), [entered("dev"), entered("ops"), entered("qa")])
        clock.advance(1.0)
        self.assertEqual(
            tony.take(),
            [
                listing(
                    ("general", "", 1, True),
                    ("dev", "", 1, True),
                    ("ops", "", 1, True),
                    ("qa", "", 1, True),
                ),
                in_room(roster(TONY), "dev"),
                in_room(roster(TONY), "ops"),
                in_room(roster(TONY), "qa"),
            ],
        )
        # One member in 4 rooms: the next round is 4 / 2 = 2 s away, at 3 s.
        mary = self.server.connect()
        mary.send_json(rooms_join(MARY))
        self.assertEqual(mary.take(), [OKAY])
        clock.advance(1.0)
        now = listing(
            ("general", "", 2, True),
            ("dev", "", 1, False),
            ("ops", "", 1, False),
            ("qa", "", 1, False),
        )
        self.assertEqual(mary.take(), [now, in_room(roster(TONY, MARY), "general")])
        # Tony hears of Mary in general's roster now, of its count at 3 s.
        self.assertEqual(tony.take(), [in_room(roster(TONY, MARY), "general")])
        clock.advance(0.9)
        self.assertEqual(tony.take(), [])
        clock.advance(0.1)
        self.assertEqual(
            tony.take(),
            [
                listing(
                    ("general", "", 2, True),
                    ("dev", "", 1, True),
                    ("ops", "", 1, True),
                    ("qa", "", 1, True),
                )
            ],
        )
        # Nothing changed since: no round is waiting.
        clock.advance(10.0)
        self.assertEqual((tony.take(), mary.take()), ([], []))
        self.assertEqual(clock.getDelayedCalls(), [])
