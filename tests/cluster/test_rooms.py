"""Rooms are not carried by the cluster's bus yet: a real node on a real
redis-server serves a client that asks for them as one without them, and
says so (``ROOMS_UNAVAILABLE``) instead of misrouting its room commands."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.cluster.support import WAIT, join_on, start_node
from tests.support import msg, roster, send, strip_ts
from tests.support.redis import start_redis

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")


class RoomsOnAClusterTests(TestCase):
    async def test_a_rooms_client_is_told_and_kept_in_the_default_room(
        self,
    ) -> None:
        redis = start_redis(self)
        node = await start_node(self, redis)
        tony = await join_on(self, node, *TONY, CAPS=["rooms"])
        error = await tony.next_object(WAIT)
        self.assertEqual(
            (error["CMD"], error["CODE"], error["REF"]),
            ("ERROR", "ROOMS_UNAVAILABLE", "JOIN"),
        )
        self.assertIn("cluster", error["REASON"])
        self.assertEqual(await tony.next_object(WAIT), roster(TONY))
        for command, ref in [
            ({"CMD": "ENTER", "ROOM": "dev"}, "ENTER"),
            ({"CMD": "EXIT", "ROOM": "general"}, "EXIT"),
            ({**send("hi", [], TONY[1]), "ROOM": "dev"}, "SEND"),
        ]:
            tony.send_json(command)
            error = await tony.next_object(WAIT)
            self.assertEqual((error["CODE"], error["REF"]), ("ROOMS_UNAVAILABLE", ref))
        mary = await join_on(self, node, *MARY)
        self.assertEqual(await mary.next_object(WAIT), roster(TONY, MARY))
        self.assertEqual(await tony.next_object(WAIT), roster(TONY, MARY))
        tony.send_json(send("hello", [], TONY[1]))
        self.assertEqual(
            strip_ts(await mary.next_object(WAIT)), msg("ALL", "hello", TONY[1])
        )
