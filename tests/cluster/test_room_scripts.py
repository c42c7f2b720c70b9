"""The rooms' Lua scripts on a real redis-server: each decision and its
refusals, the stream entries they append (as ``muca.cluster.entries``
decodes them), the snapshot a starting node reads, registering again with
rooms, and a dead node's members leaving every room with their entry."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.cluster import scripts
from muca.cluster.entries import (
    Entered,
    Entry,
    Exited,
    Invited,
    Joined,
    Left,
    RoomChanged,
    decode,
    encode,
)
from muca.cluster.redisbus import STREAM_MAXLEN
from muca.cluster.redisclient import ScriptCall, connect
from muca.cluster.redisclient import encode as command
from tests.cluster.test_redisclient import until_connected
from tests.support.redis import start_redis

NODE = "node-a"
OTHER = "node-b"
EVENTS = scripts.KEYS[2]
MEMBERS = scripts.KEYS[0]
TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")


class RoomScriptsTests(TestCase):
    async def start(self) -> None:
        """A private Redis on which ``NODE`` and ``OTHER`` are alive, Tony
        joined on ``NODE`` and Mary on ``OTHER``."""
        redis = start_redis(self)
        factory = connect(reactor, "127.0.0.1", redis.port, 0, 2.0)
        self.addCleanup(factory.disconnect)
        self.redis = await until_connected(factory)
        self.position = "0-0"
        for node in (NODE, OTHER):
            await self.script(scripts.HEARTBEAT, node, "e1", "5000", "2000", "3000", "")
        for (nickname, uid), node in ((TONY, NODE), (MARY, OTHER)):
            verdict, _ = await self.script(
                scripts.JOIN, uid, nickname, node, "0", nickname.lower(), "0"
            )
            self.assertEqual(verdict, "OK")
        await self.appended()

    async def script(self, script: str, *args: str) -> Any:
        call = ScriptCall(script, scripts.KEYS, [str(STREAM_MAXLEN)])
        return await self.redis.command(call.whole(args))

    async def appended(self) -> list[Entry | None]:
        """The entries appended since last asked, decoded (and encoded back
        to the same fields, in the same order)."""
        read = await self.redis.command(
            command("XRANGE", EVENTS, "(" + self.position, "+")
        )
        entries = []
        for entry_id, flat in read:
            self.position = entry_id
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            entry = decode(fields)
            assert entry is not None, fields
            self.assertEqual(encode(entry), fields)
            entries.append(entry)
        return entries

    async def enter(self, uid: str, node: str, key: str, create: str = "1") -> Any:
        return await self.script(scripts.ENTER, uid, node, key, create, "3")

    async def test_entering_makes_a_room_and_refusals_change_nothing(self) -> None:
        await self.start()
        self.assertEqual(await self.enter(TONY[1], NODE, "dev"), ["OK"])
        made, entered = await self.appended()
        self.assertEqual(
            made, RoomChanged("dev", TONY[1], "", False, 0, TONY[1], False, True)
        )
        assert isinstance(entered, Entered), entered
        self.assertEqual(
            (entered.uid, entered.room, entered.node), (TONY[1], "dev", NODE)
        )
        refusals = [
            # Again; a room it may not make; not this node's member.
            (await self.enter(TONY[1], NODE, "dev"), ["ALREADY_IN_ROOM"]),
            (await self.enter(TONY[1], NODE, "ops", "0"), ["NO_SUCH_ROOM"]),
            (await self.enter(MARY[1], NODE, "dev"), ["GONE"]),
            # The default room, which every join enters.
            (await self.enter(MARY[1], OTHER, ""), ["ALREADY_IN_ROOM"]),
        ]
        for got, want in refusals:
            self.assertEqual(got, want)
        self.assertEqual(await self.appended(), [])
        # At most 3 rooms here (the scripts' argument).
        for name in ("a", "b"):
            self.assertEqual(await self.enter(TONY[1], NODE, name), ["OK"])
        self.assertEqual(await self.enter(TONY[1], NODE, "c"), ["ROOMS_FULL"])

    async def test_a_private_room_takes_its_owner_and_those_invited(self) -> None:
        await self.start()
        await self.enter(TONY[1], NODE, "ops")
        set_private = ("ops", "=on call", "1", "30")
        self.assertEqual(
            await self.script(scripts.ROOMSET, MARY[1], OTHER, *set_private),
            ["NOT_ALLOWED", TONY[1]],
        )
        self.assertEqual(
            await self.script(scripts.ROOMSET, MARY[1], OTHER, "", "=x", "", ""),
            ["NOT_ALLOWED", ""],
        )
        self.assertEqual(
            await self.script(scripts.ROOMSET, TONY[1], NODE, "nope", "=x", "", ""),
            ["NO_SUCH_ROOM"],
        )
        await self.appended()
        self.assertEqual(
            await self.script(scripts.ROOMSET, TONY[1], NODE, *set_private), ["OK"]
        )
        self.assertEqual(
            await self.appended(),
            [RoomChanged("ops", TONY[1], "on call", True, 30, TONY[1], True, False)],
        )
        # The same topic again: no change of topic said.
        await self.script(scripts.ROOMSET, TONY[1], NODE, "ops", "=on call", "", "")
        [again] = await self.appended()
        assert isinstance(again, RoomChanged)
        self.assertFalse(again.topic_changed)
        self.assertEqual(await self.enter(MARY[1], OTHER, "ops"), ["INVITE_ONLY"])
        # Only a member invites.
        invite = ("ops", MARY[1], "2", "3")
        self.assertEqual(
            await self.script(scripts.INVITE, MARY[1], OTHER, *invite),
            ["NOT_IN_ROOM"],
        )
        self.assertEqual(
            await self.script(scripts.INVITE, TONY[1], NODE, *invite), ["OK"]
        )
        self.assertEqual(await self.appended(), [Invited("ops", MARY[1], TONY[1])])
        self.assertEqual(await self.enter(MARY[1], OTHER, "ops"), ["OK"])
        # At most 2 invitations a room, 3 in all (the script's arguments).
        invite = (TONY[1], NODE)
        self.assertEqual(
            await self.script(scripts.INVITE, *invite, "ops", "a@x", "2", "3"), ["OK"]
        )
        self.assertEqual(
            await self.script(scripts.INVITE, *invite, "ops", "b@x", "2", "3"),
            ["INVITES_FULL"],
        )
        await self.enter(TONY[1], NODE, "dev")
        self.assertEqual(
            await self.script(scripts.INVITE, *invite, "dev", "c@x", "2", "3"), ["OK"]
        )
        self.assertEqual(
            await self.script(scripts.INVITE, *invite, "dev", "d@x", "2", "3"),
            ["INVITES_FULL"],
        )

    async def test_the_snapshot_has_the_rooms_and_each_members_rooms(self) -> None:
        await self.start()
        await self.enter(MARY[1], OTHER, "dev")
        await self.enter(TONY[1], NODE, "dev")
        self.assertEqual(
            await self.script(scripts.EXIT, TONY[1], NODE, ""), 1
        )  # out of the default room
        self.assertEqual(await self.script(scripts.EXIT, TONY[1], NODE, ""), 0)
        self.assertEqual(await self.script(scripts.EXIT, TONY[1], OTHER, "dev"), 0)
        epoch, _position, rooms, *rows = await self.script(scripts.SNAPSHOT)
        self.assertEqual(epoch, "e1")
        [[name, _seq, owner, topic, private, slow, invited]] = json.loads(rooms)
        self.assertEqual(
            (name, owner, topic, private, slow, invited), ("dev", MARY[1], "", 0, 0, {})
        )
        members = {
            row[0]: (row[1], row[2], json.loads(row[4])[::2])
            for row in (rows[i : i + 5] for i in range(0, len(rows), 5))
        }
        self.assertEqual(
            members,
            {TONY[1]: ("Tony", NODE, ["dev"]), MARY[1]: ("Mary", OTHER, ["", "dev"])},
        )

    async def test_registering_again_keeps_rooms_and_makes_lost_ones(self) -> None:
        await self.start()
        await self.enter(TONY[1], NODE, "dev")
        await self.appended()
        # Tony is still registered: the exits this node made while Redis
        # could not take them are made now.
        rooms = json.dumps([["ops", TONY[1], "pager", 1, 0, [MARY[1]]]])
        conflicts = await self.script(
            scripts.SYNC, NODE, rooms, TONY[1], "Tony", "tony", json.dumps(["dev"])
        )
        self.assertEqual(conflicts, [])
        self.assertEqual(
            await self.appended(),
            [
                RoomChanged("ops", TONY[1], "pager", True, 0, "", False, True),
                Invited("ops", MARY[1], ""),
                Exited(TONY[1], "", NODE),
            ],
        )
        # Henry, registered again in two rooms, one of them unknown.
        await self.script(
            scripts.SYNC,
            NODE,
            "[]",
            TONY[1],
            "Tony",
            "tony",
            json.dumps(["dev"]),
            "henry@hku.hk",
            "Henry",
            "henry",
            json.dumps(["ops", "gone", ""]),
        )
        [joined] = await self.appended()
        assert isinstance(joined, Joined), joined
        self.assertEqual((joined.uid, joined.rooms), ("henry@hku.hk", ("ops", "")))

    async def test_a_dead_nodes_members_go_with_their_rooms(self) -> None:
        await self.start()
        await self.enter(MARY[1], OTHER, "dev")
        await self.appended()
        # NODE's beat, OTHER silent past a TTL of 0 ms.
        await self.script(scripts.HEARTBEAT, NODE, "e1", "0", "60000", "3000", "e1")
        self.assertEqual(await self.appended(), [Left(MARY[1], OTHER)])
        self.assertIsNone(await self.redis.command(command("HGET", MEMBERS, MARY[1])))
        # Its room stays (its owner may come back), empty.
        epoch, _position, rooms, *rows = await self.script(scripts.SNAPSHOT)
        self.assertEqual([room[0] for room in json.loads(rooms)], ["dev"])
        self.assertEqual(rows[0], TONY[1])
        self.assertEqual(len(rows), 5)
