"""Rooms across a cluster: three real ``twistd`` nodes on a real
redis-server. A room made on one node is entered from another, its
broadcasts reach its members on every node and nobody else, settings,
topics and invitations hold cluster-wide, a node started later sees the
rooms and their rosters, and a node killed with SIGKILL takes its users out
of every room on the others within 10 s."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import psycopg
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.cluster.support import WAIT, join_on, logged, start_node
from tests.support import RawClient, connect, join, send
from tests.support import postgres as pgsupport
from tests.support.redis import RedisServer, start_redis
from tests.support.twistd import Twistd

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")
OLGA = ("Olga", "olga@hku.hk")


def peers(*people: tuple[str, str]) -> list[dict[str, str]]:
    return [{"UN": un, "UID": uid} for un, uid in people]


async def next_where(
    client: RawClient, wanted: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """The next object ``wanted`` says is the one, skipping others."""
    for _ in range(1000):
        obj = await client.next_object(WAIT)
        if wanted(obj):
            return obj
    raise AssertionError(f"no {what} in 1000 objects")


async def room_roster_becomes(
    client: RawClient, room: str, *people: tuple[str, str]
) -> None:
    """Read until a ``LIST`` of ``room`` is exactly ``people``, in order."""
    want = peers(*people)
    await next_where(
        client,
        lambda o: (
            o.get("CMD") == "LIST" and o.get("ROOM") == room and o["DATA"] == want
        ),
        f"LIST of {room} {want}",
    )


async def rooms_show(client: RawClient, entries: list[tuple[str, int, bool]]) -> None:
    """Read until a ``ROOMS`` shows exactly these (name, count, in)."""
    await next_where(
        client,
        lambda o: (
            o.get("CMD") == "ROOMS"
            and [(r["ROOM"], r["COUNT"], r["IN"]) for r in o["DATA"]] == entries
        ),
        f"ROOMS {entries}",
    )


async def entered(client: RawClient, room: str, topic: str = "") -> None:
    obj = await next_where(
        client, lambda o: o.get("CMD") in ("ENTERED", "ERROR"), "ENTERED"
    )
    assert obj == {"CMD": "ENTERED", "ROOM": room, "TOPIC": topic}, obj


async def error(client: RawClient) -> tuple[str, str, str]:
    obj = await next_where(client, lambda o: o.get("CMD") == "ERROR", "ERROR")
    return obj["CODE"], obj["REF"], obj["REASON"]


async def message(client: RawClient) -> dict[str, Any]:
    obj = await next_where(client, lambda o: o.get("CMD") == "MSG", "MSG")
    obj.pop("TS")
    return obj


class RoomsAcrossNodesTests(TestCase):
    async def three_nodes(self) -> tuple[RedisServer, list[Twistd]]:
        redis = start_redis(self)
        return redis, [await start_node(self, redis) for _ in range(3)]

    async def test_a_room_made_on_one_node_entered_from_another(self) -> None:
        _, (one, two, three) = await self.three_nodes()
        tony = await join_on(self, one, *TONY, CAPS=["rooms"])
        mary = await join_on(self, two, *MARY, CAPS=["rooms"])
        henry = await join_on(self, three, *HENRY, CAPS=["rooms"])
        olga = await join_on(self, three, *OLGA)
        for client in (tony, mary, henry):
            await room_roster_becomes(client, "general", TONY, MARY, HENRY, OLGA)

        tony.send_json({"CMD": "ENTER", "ROOM": "#Dev"})
        await entered(tony, "dev")
        await room_roster_becomes(tony, "dev", TONY)
        # Every node has the room, with its one member.
        await rooms_show(henry, [("general", 4, True), ("dev", 1, False)])
        mary.send_json({"CMD": "ENTER", "ROOM": "dev"})
        await entered(mary, "dev")
        await room_roster_becomes(mary, "dev", TONY, MARY)
        await room_roster_becomes(tony, "dev", TONY, MARY)
        await rooms_show(henry, [("general", 4, True), ("dev", 2, False)])
        # Entering twice, on another node: refused by the cluster.
        mary.send_json({"CMD": "ENTER", "ROOM": "dev"})
        self.assertEqual(
            await error(mary),
            ("ALREADY_IN_ROOM", "ENTER", "you are in the room 'dev' already"),
        )

        # A room's broadcast reaches its members on other nodes only.
        tony.send_json({**send("in dev", [], TONY[1]), "ROOM": "dev"})
        self.assertEqual(
            await message(mary),
            {"CMD": "MSG", "TYPE": "ALL", "MSG": "in dev", "FROM": TONY[1], "ID": 1}
            | {"ROOM": "dev"},
        )
        tony.send_json(send("in general", [], TONY[1]))
        # Henry's and Olga's next message is the default room's: they had
        # nothing from dev (Olga, without rooms, as before rooms existed).
        general = {"CMD": "MSG", "TYPE": "ALL", "MSG": "in general", "FROM": TONY[1]}
        self.assertEqual(await message(henry), {**general, "ID": 2, "ROOM": "general"})
        self.assertEqual(await message(olga), {**general, "ID": 2})
        self.assertEqual(await message(mary), {**general, "ID": 2, "ROOM": "general"})
        # Private messages go between users, whatever their rooms.
        henry.send_json(send("psst", [MARY[1]], HENRY[1]))
        self.assertEqual(
            await message(mary),
            {"CMD": "MSG", "TYPE": "PRIVATE", "MSG": "psst", "FROM": HENRY[1], "ID": 3},
        )

        # Mary leaves dev on her node: Tony's roster of it has him alone,
        # and her SEND to it is refused at once.
        mary.send_json({"CMD": "EXIT", "ROOM": "dev"})
        mary.send_json({**send("still here?", [], MARY[1]), "ROOM": "dev"})
        self.assertEqual(
            await error(mary),
            (
                "NOT_IN_ROOM",
                "SEND",
                "you are not in the room 'dev': enter it first; not delivered",
            ),
        )
        await room_roster_becomes(tony, "dev", TONY)
        await rooms_show(henry, [("general", 4, True), ("dev", 1, False)])

    async def test_settings_topics_and_invitations_across_nodes(self) -> None:
        _, (one, two, three) = await self.three_nodes()
        tony = await join_on(self, one, *TONY, CAPS=["rooms"])
        mary = await join_on(self, two, *MARY, CAPS=["rooms"])
        henry = await join_on(self, three, *HENRY, CAPS=["rooms"])
        tony.send_json({"CMD": "ENTER", "ROOM": "ops"})
        await entered(tony, "ops")
        await rooms_show(mary, [("general", 3, True), ("ops", 1, False)])
        mary.send_json({"CMD": "ENTER", "ROOM": "ops"})
        await entered(mary, "ops")

        tony.send_json(
            {"CMD": "ROOMSET", "ROOM": "ops", "TOPIC": "on call", "PRIVATE": True}
        )
        topic = {"CMD": "TOPIC", "ROOM": "ops", "TOPIC": "on call", "BY": TONY[1]}
        for client in (tony, mary):
            got = await next_where(client, lambda o: o.get("CMD") == "TOPIC", "TOPIC")
            self.assertEqual(got, topic)
        # Private now: Henry (not invited) no longer sees it, nor enters it.
        await rooms_show(henry, [("general", 3, True)])
        henry.send_json({"CMD": "ENTER", "ROOM": "ops"})
        self.assertEqual(
            await error(henry),
            (
                "INVITE_ONLY",
                "ENTER",
                "the room 'ops' is private: a member must invite you",
            ),
        )
        # Only its owner sets it, from whichever node.
        mary.send_json({"CMD": "ROOMSET", "ROOM": "ops", "TOPIC": "mine"})
        self.assertEqual(
            await error(mary),
            ("NOT_ALLOWED", "ROOMSET", "only its owner may change the room 'ops'"),
        )
        # Mary, a member, invites Henry from node two; he enters on three.
        mary.send_json({"CMD": "INVITE", "ROOM": "ops", "UID": HENRY[1]})
        await rooms_show(henry, [("general", 3, True), ("ops", 2, False)])
        henry.send_json({"CMD": "ENTER", "ROOM": "ops"})
        await entered(henry, "ops", "on call")
        for client in (tony, mary, henry):
            await room_roster_becomes(client, "ops", TONY, MARY, HENRY)

    async def test_a_node_started_later_has_the_rooms_and_their_rosters(
        self,
    ) -> None:
        redis = start_redis(self)
        one = await start_node(self, redis)
        tony = await join_on(self, one, *TONY, CAPS=["rooms"])
        mary = await join_on(self, one, *MARY, CAPS=["rooms"])
        for client, room in ((mary, "dev"), (tony, "dev"), (tony, "ops")):
            client.send_json({"CMD": "ENTER", "ROOM": room})
            await entered(client, room)
        tony.send_json({"CMD": "ROOMSET", "ROOM": "ops", "TOPIC": "pager"})
        tony.send_json({"CMD": "EXIT", "ROOM": "general"})
        await rooms_show(
            mary, [("general", 1, True), ("dev", 2, True), ("ops", 1, False)]
        )

        two = await start_node(self, redis)
        henry = await join_on(self, two, *HENRY, CAPS=["rooms"])
        await rooms_show(
            henry, [("general", 2, True), ("dev", 2, False), ("ops", 1, False)]
        )
        await room_roster_becomes(henry, "general", MARY, HENRY)
        henry.send_json({"CMD": "ENTER", "ROOM": "ops"})
        await entered(henry, "ops", "pager")
        await room_roster_becomes(henry, "ops", TONY, HENRY)
        henry.send_json({"CMD": "ENTER", "ROOM": "dev"})
        await entered(henry, "dev")
        # In the order they entered: Mary first, as on node one.
        await room_roster_becomes(henry, "dev", MARY, TONY, HENRY)
        await room_roster_becomes(tony, "dev", MARY, TONY, HENRY)

    async def test_a_killed_node_takes_its_users_out_of_every_room(self) -> None:
        _, (one, two, three) = await self.three_nodes()
        tony = await join_on(self, one, *TONY, CAPS=["rooms"])
        henry = await join_on(self, three, *HENRY, CAPS=["rooms"])
        mary = await join_on(self, two, *MARY, CAPS=["rooms"])
        for client, room in ((tony, "dev"), (mary, "dev"), (mary, "ops")):
            client.send_json({"CMD": "ENTER", "ROOM": room})
            await entered(client, room)
        henry.send_json({"CMD": "ENTER", "ROOM": "ops"})
        await entered(henry, "ops")
        await room_roster_becomes(tony, "dev", TONY, MARY)
        await room_roster_becomes(henry, "ops", MARY, HENRY)

        os.kill(two.pid, signal.SIGKILL)
        killed = time.monotonic()
        # The default room's roster first, as every update has it.
        await room_roster_becomes(tony, "general", TONY, HENRY)
        await room_roster_becomes(tony, "dev", TONY)
        # ROOMS comes before the rosters of the same update.
        await rooms_show(
            henry, [("general", 2, True), ("dev", 1, False), ("ops", 1, True)]
        )
        await room_roster_becomes(henry, "ops", HENRY)
        self.assertLess(time.monotonic() - killed, 10.0)


class RoomsAfterRedisLostItsDataTests(TestCase):
    async def test_the_nodes_register_their_rooms_again(self) -> None:
        redis = start_redis(self)
        one = await start_node(self, redis)
        two = await start_node(self, redis)
        tony = await join_on(self, one, *TONY, CAPS=["rooms"])
        mary = await join_on(self, two, *MARY, CAPS=["rooms"])
        tony.send_json({"CMD": "ENTER", "ROOM": "dev"})
        await entered(tony, "dev")
        tony.send_json(
            {"CMD": "ROOMSET", "ROOM": "dev", "TOPIC": "the build", "PRIVATE": True}
        )
        tony.send_json({"CMD": "INVITE", "ROOM": "dev", "UID": MARY[1]})
        await rooms_show(mary, [("general", 2, True), ("dev", 1, False)])
        mary.send_json({"CMD": "ENTER", "ROOM": "dev"})
        await entered(mary, "dev", "the build")
        tony.send_json({"CMD": "EXIT", "ROOM": "general"})
        await rooms_show(mary, [("general", 1, True), ("dev", 2, True)])

        since = len(two.process.output)
        redis.kill()
        await logged(two, "cluster: Redis unreachable", since)
        # Nothing is decided meanwhile: one ERROR, and nothing done.
        mary.send_json({"CMD": "ENTER", "ROOM": "ops"})
        code, ref, reason = await error(mary)
        self.assertEqual((code, ref), ("CLUSTER_UNAVAILABLE", "ENTER"))
        self.assertIn("cannot be reached", reason)

        redis.start()
        deadline = time.monotonic() + 2 * WAIT
        while True:
            probe = await connect(self, one.port)
            probe.send_json(join("Other", MARY[1]))
            ack = await probe.next_object(WAIT)
            probe.close()
            if ack.get("CODE") == "UID_TAKEN" or time.monotonic() > deadline:
                break
            await deferLater(reactor, 0.3)
        self.assertEqual(ack.get("CODE"), "UID_TAKEN")
        # The room, its settings, its invitation and members are back in
        # Redis: a node started now has them.
        three = await start_node(self, redis)
        henry = await join_on(self, three, *HENRY, CAPS=["rooms"])
        await rooms_show(henry, [("general", 2, True)])
        henry.send_json({"CMD": "ENTER", "ROOM": "dev"})
        self.assertEqual((await error(henry))[0], "INVITE_ONLY")
        tony.send_json({"CMD": "INVITE", "ROOM": "dev", "UID": HENRY[1]})
        await rooms_show(henry, [("general", 2, True), ("dev", 2, False)])
        henry.send_json({"CMD": "ENTER", "ROOM": "dev"})
        await entered(henry, "dev", "the build")
        # Tony and Mary in the order their nodes registered them again.
        roster = await next_where(
            henry,
            lambda o: o.get("CMD") == "LIST" and o.get("ROOM") == "dev",
            "LIST of dev",
        )
        self.assertEqual(roster["DATA"][-1], peers(HENRY)[0])
        self.assertCountEqual(roster["DATA"], peers(TONY, MARY, HENRY))
        tony.send_json({**send("back", [], TONY[1]), "ROOM": "dev"})
        for client in (mary, henry):
            got = await message(client)
            self.assertEqual((got["MSG"], got["ROOM"]), ("back", "dev"))


class RoomsHistoryTests(TestCase):
    async def test_a_rooms_broadcasts_are_stored_with_their_room(self) -> None:
        redis = start_redis(self)
        database = pgsupport.fresh_database(self)
        one = await start_node(self, redis, "--db", database)
        two = await start_node(self, redis, "--db", database)
        tony = await join_on(self, one, *TONY, CAPS=["rooms"])
        mary = await join_on(self, two, *MARY, CAPS=["rooms", "history"])
        await next_where(mary, lambda o: o.get("CMD") == "HISTORY", "replay's end")
        for client in (tony, mary):
            client.send_json({"CMD": "ENTER", "ROOM": "dev"})
            await entered(client, "dev")
        tony.send_json({**send("in dev", [], TONY[1]), "ROOM": "dev"})
        self.assertEqual((await message(mary))["ROOM"], "dev")
        tony.send_json(send("in general", [], TONY[1]))
        self.assertEqual((await message(mary))["ROOM"], "general")
        with psycopg.connect(database) as connection:
            rows = connection.execute(
                "SELECT id, room, text FROM muca_messages ORDER BY id"
            ).fetchall()
        self.assertEqual(
            [(id_, room, bytes(text).decode()) for id_, room, text in rows],
            [(1, "dev", "in dev"), (2, "", "in general")],
        )
        # Scrolling back in a room reads that room's, on any node.
        for room, text, id_ in (("dev", "in dev", 1), ("general", "in general", 2)):
            mary.send_json(
                {"CMD": "HISTORY", "ROOM": room, "BEFORE": 10**12, "LIMIT": 10}
            )
            page = await next_where(mary, lambda o: o.get("CMD") == "MSG", "MSG")
            self.assertEqual(
                (page["MSG"], page["ID"], page["HIST"], page["ROOM"]),
                (text, id_, True, room),
            )
            self.assertEqual(
                await mary.next_object(WAIT),
                {"CMD": "HISTORY", "MORE": False, "ROOM": room},
            )
        # A room's replay after ENTERED, on a third node.
        three = await start_node(self, redis, "--db", database)
        olga = await join_on(self, three, *OLGA, CAPS=["rooms", "history"])
        await next_where(olga, lambda o: o.get("CMD") == "HISTORY", "replay's end")
        olga.send_json({"CMD": "ENTER", "ROOM": "dev"})
        await entered(olga, "dev")
        replayed = await next_where(olga, lambda o: o.get("CMD") == "MSG", "replay")
        self.assertEqual(
            (replayed["MSG"], replayed["ROOM"], replayed["HIST"]),
            ("in dev", "dev", True),
        )
