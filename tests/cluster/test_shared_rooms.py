"""A node's side of the cluster's rooms, in process: a chat factory in
memory whose rooms commands run the real scripts on a real redis-server,
and whose replica applies the stream's entries as the bus hands them on.
What its member sees comes when the entries are back, refusals from the
script's reply; another node's entries change the replica; and the
membership leaves no timer behind at stop."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from muca.cluster import scripts
from muca.cluster.entries import Joined, Left, decode
from muca.cluster.membership import Membership
from muca.cluster.redisbus import STREAM_MAXLEN
from muca.cluster.redisclient import ScriptCall, connect, encode
from muca.cluster.rooms import MAX_ROOMS
from muca.cluster.stream import StreamReader
from muca.protocol.messages import Enter, Exit, Invite, Join, ProtocolError, RoomSet
from muca.server.room import Member
from tests.cluster.test_redisclient import until_connected
from tests.support import MemoryPeer, MemoryServer, split_objects
from tests.support.redis import start_redis

NODE = "node-a"
OTHER = "node-b"
EVENTS = scripts.KEYS[2]
TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")


class SharedRoomsTests(TestCase):
    async def start(self) -> None:
        redis = start_redis(self)
        factory = connect(reactor, "127.0.0.1", redis.port, 0, 2.0)
        self.addCleanup(factory.disconnect)
        self.redis = await until_connected(factory)
        self.clock = Clock()
        self.server = MemoryServer()
        self.addCleanup(self.server.stop)
        self.membership = Membership(
            self.clock,
            NODE,
            None,
            self.run_script,
            StreamReader(self.clock, lambda fields: None, lambda: None),
            lambda failure: None,
        )
        self.membership.listener = self.server.factory
        self.server.factory.shared_rooms = self.membership.rooms
        self.position = "0-0"
        for node in (NODE, OTHER):
            await self.script(scripts.HEARTBEAT, node, "e1", "5000", "2000", "3000", "")
        # Tony joins here (with rooms), Mary on the other node.
        self.peer = self.server.connect()
        joining = Deferred.fromCoroutine(
            self.joined(self.peer, Join(*TONY, caps=frozenset({"rooms"})))
        )
        await self.script(scripts.JOIN, MARY[1], MARY[0], OTHER, "0", "mary", "0")
        await self.events_come_back()
        self.tony: Member = await joining
        self.take()

    async def joined(self, peer: MemoryPeer, join: Join) -> Member:
        return await self.membership.join(peer.protocol, join, True)

    def run_script(self, script: str, *args: str) -> Deferred[Any]:
        return Deferred.fromCoroutine(self.script(script, *args))

    async def script(self, script: str, *args: str) -> Any:
        call = ScriptCall(script, scripts.KEYS, [str(STREAM_MAXLEN)])
        return await self.redis.command(call.whole(args))

    async def events_come_back(self) -> None:
        """The stream's new entries reach the node, as its reader hands
        them on to the bus (see ``RedisBus._apply``)."""
        await self.redis.command(encode("PING"))
        read = await self.redis.command(
            encode("XRANGE", EVENTS, "(" + self.position, "+")
        )
        for entry_id, flat in read:
            self.position = entry_id
            entry = decode(dict(zip(flat[::2], flat[1::2], strict=True)))
            if isinstance(entry, Joined):
                self.membership.apply_join(entry)
            elif isinstance(entry, Left):
                self.membership.apply_leave(entry)
            elif entry is not None:
                self.membership.rooms.apply(entry)

    def take(self) -> list[Any]:
        """What Tony was sent since last asked (once the roster is out)."""
        self.server.clock.advance(1)
        objects, rest = split_objects(self.peer.take_bytes().decode())
        self.assertEqual(rest, "")
        return objects

    async def test_entered_once_the_entry_is_back(self) -> None:
        await self.start()
        factory = self.server.factory
        factory.enter(self.tony, Enter("dev"))
        await self.redis.command(encode("PING"))
        # Decided in Redis; nothing here until its entries come back.
        self.assertEqual(self.take(), [])
        self.assertIsNone(factory.room.rooms.get("dev"))
        await self.events_come_back()
        self.assertEqual(
            self.take(),
            [
                {"CMD": "ENTERED", "ROOM": "dev", "TOPIC": ""},
                {
                    "CMD": "ROOMS",
                    "DATA": [
                        {"ROOM": "general", "TOPIC": "", "COUNT": 2, "IN": True},
                        {"ROOM": "dev", "TOPIC": "", "COUNT": 1, "IN": True},
                    ],
                },
                {
                    "CMD": "LIST",
                    "DATA": [{"UN": "Tony", "UID": TONY[1]}],
                    "ROOM": "dev",
                },
            ],
        )
        # Mary enters on the other node: Tony's roster of dev has her.
        await self.script(scripts.ENTER, MARY[1], OTHER, "dev", "1", str(MAX_ROOMS))
        await self.events_come_back()
        room = factory.room.rooms.get("dev")
        assert room is not None
        self.assertEqual([m.uid for m in room.members()], [TONY[1], MARY[1]])
        self.assertEqual(self.take()[-1]["DATA"][-1], {"UN": "Mary", "UID": MARY[1]})
        # Tony sets the topic: TOPIC once its entry is back.
        factory.set_room(self.tony, RoomSet("dev", topic="the build"))
        await self.events_come_back()
        self.assertEqual(
            self.take()[0],
            {"CMD": "TOPIC", "ROOM": "dev", "TOPIC": "the build", "BY": TONY[1]},
        )
        # Mary leaves dev on her node.
        await self.script(scripts.EXIT, MARY[1], OTHER, "dev")
        await self.events_come_back()
        self.assertEqual([m.uid for m in room.members()], [TONY[1]])

    async def test_refusals_come_from_the_scripts_reply(self) -> None:
        await self.start()
        factory = self.server.factory
        # Twice before the first entry is back: Redis refuses the second.
        factory.enter(self.tony, Enter("dev"))
        factory.enter(self.tony, Enter("dev"))
        await self.events_come_back()
        objects = self.take()
        self.assertEqual(
            objects[0],
            {
                "CMD": "ERROR",
                "CODE": "ALREADY_IN_ROOM",
                "REASON": "you are in the room 'dev' already",
                "REF": "ENTER",
            },
        )
        self.assertEqual(objects[1]["CMD"], "ENTERED")
        # Mary made ops on her node, then made it private: Tony's ENTER,
        # checked here before that entry is back, is refused by Redis.
        await self.script(scripts.ENTER, MARY[1], OTHER, "ops", "1", str(MAX_ROOMS))
        await self.events_come_back()
        self.take()
        await self.script(scripts.ROOMSET, MARY[1], OTHER, "ops", "", "1", "")
        factory.enter(self.tony, Enter("ops"))
        factory.invite(self.tony, Invite("dev", MARY[1]))
        await self.events_come_back()
        self.assertEqual(
            [(o["CMD"], o.get("CODE"), o.get("REF")) for o in self.take()],
            [("ERROR", "INVITE_ONLY", "ENTER"), ("ROOMS", None, None)],
        )
        # What the replica knows is refused here at once.
        with self.assertRaises(ProtocolError) as refused:
            factory.set_room(self.tony, RoomSet("ops", topic="mine"))
        self.assertEqual(refused.exception.code, "NOT_ALLOWED")
        room = factory.room.rooms.get("dev")
        assert room is not None
        self.assertEqual(room.invited, {MARY[1]})
        # Tony's exit is made here at once.
        factory.exit(self.tony, Exit("dev"))
        self.assertNotIn(TONY[1], room)
        await self.events_come_back()
        self.assertNotIn(TONY[1], room)

    async def test_the_membership_leaves_no_timer_at_stop(self) -> None:
        await self.start()
        self.membership.replay_all(3.0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.membership.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
