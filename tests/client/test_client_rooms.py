"""Rooms with ChatClient on a real loopback server: the rooms listed,
entering, leaving, a room's roster, topic and broadcasts reaching only its
members, refusals as readable lines; rooms across two cluster nodes; and a
server without rooms (an original one) where the client is what it was
before."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from muca.client.errors import NotConnected, RoomRefused, RoomsUnavailable
from muca.client.rooms import RoomInfo
from muca.protocol.messages import ALL, PRIVATE, Peer
from tests.cluster.support import start_node
from tests.support.client import (
    HENRY,
    MARY,
    TONY,
    ClientTestCase,
    ClientTestMixin,
    RecordingObserver,
    listen_loopback,
    settle,
    wait_until,
)
from tests.support.redis import start_redis
from tests.support.servers import PickyRoom


class RoomsObserver(RecordingObserver):
    """Records the rooms events too."""

    def rooms_changed(self, rooms: tuple[RoomInfo, ...]) -> None:
        self.events.append(("rooms", rooms))

    def room_entered(self, room: str, topic: str) -> None:
        self.events.append(("entered", (room, topic)))

    def room_exited(self, room: str) -> None:
        self.events.append(("exited", room))

    def room_peers_changed(self, room: str, peers: tuple[Peer, ...]) -> None:
        self.events.append(("room_peers", (room, peers)))

    def topic_changed(self, room: str, topic: str, by: str) -> None:
        self.events.append(("topic", (room, topic, by)))

    def room_refused(self, refusal: RoomRefused) -> None:
        self.events.append(("room_refused", refusal))

    def rooms_unavailable(self, reason: str) -> None:
        self.events.append(("rooms_unavailable", reason))


class RoomsClientMixin(ClientTestMixin):
    async def rooms_client(
        self, user: tuple[str, str], port: int | None = None
    ) -> tuple[ChatClient, RoomsObserver]:
        observer = RoomsObserver()
        client, _ = await self.client(user, observer=observer, port=port)
        return client, observer


class RoomsTests(RoomsClientMixin, ClientTestCase):
    async def test_the_rooms_are_listed_after_joining(self) -> None:
        tony, seen = await self.rooms_client(TONY)
        rooms = await seen.next_of("rooms")
        self.assertEqual(rooms, (RoomInfo("general", "", 1, True),))
        self.assertEqual((tony.default_room, tony.rooms_in), ("general", ("general",)))
        self.assertTrue(tony.rooms_available)
        self.assertEqual(await seen.next_of("room_peers"), ("general", (Peer(*TONY),)))
        self.assertEqual(tony.peers, (Peer(*TONY),))

    async def test_a_room_made_entered_and_its_message_reaching_only_members(
        self,
    ) -> None:
        tony, tony_seen = await self.rooms_client(TONY)
        mary, mary_seen = await self.rooms_client(MARY)
        henry, henry_seen = await self.rooms_client(HENRY)
        self.assertEqual(await tony.enter("#Dev"), "")
        self.assertEqual(tony_seen.of("entered"), [("dev", "")])
        await mary.enter("dev")
        await wait_until(lambda: len(tony.room_peers("dev")) == 2, what="roster")
        self.assertEqual(tony.room_peers("dev"), (Peer(*TONY), Peer(*MARY)))
        await wait_until(
            lambda: RoomInfo("dev", "", 2, False) in henry.rooms, what="rooms"
        )
        # The default room's roster is still everyone's.
        self.assertEqual(tony.peers, (Peer(*TONY), Peer(*MARY), Peer(*HENRY)))
        sent = tony.send([], "build is red", room="dev")
        self.assertEqual(sent.room, "dev")
        message = await mary_seen.next_of("message")
        self.assertEqual(
            (message.kind, message.room, message.sender_nickname, message.text),
            (ALL, "dev", "Tony", "build is red"),
        )
        tony.send([], "lunch?")
        lunch = await henry_seen.next_of("message")
        self.assertEqual((lunch.room, lunch.text), ("general", "lunch?"))
        await mary_seen.next_of("message", 2)
        self.assertEqual(
            [m.text for m in henry_seen.of("message")], ["lunch?"]
        )  # never dev's
        henry.send([TONY[1]], "psst")
        private = await tony_seen.next_of("message")
        self.assertEqual((private.kind, private.room), (PRIVATE, None))

    async def test_leaving_a_room(self) -> None:
        tony, tony_seen = await self.rooms_client(TONY)
        mary, mary_seen = await self.rooms_client(MARY)
        await tony.enter("dev")
        await mary.enter("dev")
        await wait_until(lambda: len(tony.room_peers("dev")) == 2, what="roster")
        mary.exit("dev")
        await mary_seen.next_of("exited")
        self.assertEqual(mary.rooms_in, ("general",))
        self.assertEqual(mary.room_peers("dev"), ())
        await wait_until(lambda: tony.room_peers("dev") == (Peer(*TONY),), what="left")
        # Out of the default room: no broadcast of it, an empty peer list.
        tony.exit("general")
        self.assertEqual(await tony_seen.next_of("exited"), "general")
        self.assertEqual(tony.peers, ())
        mary.send([], "anyone?")
        await settle()
        self.assertEqual(tony_seen.of("message"), [])

    async def test_the_owner_sets_the_topic_and_members_hear_of_it(self) -> None:
        tony, tony_seen = await self.rooms_client(TONY)
        mary, mary_seen = await self.rooms_client(MARY)
        await tony.enter("dev")
        await mary.enter("dev")
        tony.set_room("dev", topic="the build")
        topic = await mary_seen.next_of("topic")
        self.assertEqual(topic, ("dev", "the build", TONY[1]))
        await wait_until(
            lambda: RoomInfo("dev", "the build", 2, True) in mary.rooms, what="topic"
        )

    async def test_a_private_room_takes_those_invited(self) -> None:
        tony, _ = await self.rooms_client(TONY)
        mary, mary_seen = await self.rooms_client(MARY)
        await tony.enter("ops")
        await wait_until(lambda: len(mary.rooms) == 2, what="ops listed")
        tony.set_room("ops", private=True)
        await wait_until(lambda: len(mary.rooms) == 1, what="hidden")
        with self.assertRaises(RoomRefused) as raised:
            await mary.enter("ops")
        self.assertEqual(raised.exception.code, "INVITE_ONLY")
        self.assertEqual(
            str(raised.exception),
            "cannot enter #ops: the room 'ops' is private: a member must invite"
            " you (INVITE_ONLY)",
        )
        self.assertEqual(mary_seen.of("room_refused"), [raised.exception])
        tony.invite("ops", MARY[1])
        await wait_until(lambda: len(mary.rooms) == 2, what="invited")
        self.assertEqual(await mary.enter("ops"), "")
        await wait_until(lambda: "ops" in mary.rooms_in, what="in ops")
        self.assertEqual(mary.room_peers("ops"), (Peer(*TONY), Peer(*MARY)))

    async def test_refusals_are_readable_lines(self) -> None:
        tony, tony_seen = await self.rooms_client(TONY)
        mary, mary_seen = await self.rooms_client(MARY)
        await tony.enter("dev")
        with self.assertRaises(RoomRefused) as raised:
            await tony.enter("dev")
        self.assertEqual(
            str(raised.exception),
            "cannot enter #dev: you are in the room 'dev' already (ALREADY_IN_ROOM)",
        )
        mary.exit("dev")
        refusal = await mary_seen.next_of("room_refused")
        self.assertEqual(
            str(refusal),
            "cannot leave the room: you are not in the room 'dev' (NOT_IN_ROOM)",
        )
        mary.set_room("dev", topic="mine")
        refusal = await mary_seen.next_of("room_refused", 2)
        self.assertEqual((refusal.code, refusal.ref), ("NOT_ALLOWED", "ROOMSET"))
        self.assertTrue(str(refusal).startswith("cannot change the room: "))
        sent = mary.send([], "let me in", room="dev")
        send_refusal = await mary_seen.next_of("send_refused")
        self.assertIs(send_refusal.message, sent)
        self.assertEqual(send_refusal.code, "NOT_IN_ROOM")
        # A bad name is refused here, and nothing is sent.
        with self.assertRaises(RoomRefused) as bad:
            tony.enter("no room!")
        self.assertEqual(bad.exception.code, "BAD_ROOM")
        self.assertIn("is no room name", str(bad.exception))
        await settle()
        self.assertEqual(tony_seen.of("error"), [])
        self.assertEqual(mary_seen.of("error"), [])

    async def test_rooms_need_a_joined_client(self) -> None:
        idle = ChatClient(reactor, *TONY)
        with self.assertRaises(NotConnected):
            idle.enter("dev")


class WithoutRoomsTests(RoomsClientMixin, TestCase):
    async def test_an_original_server_is_one_room_as_before(self) -> None:
        room = PickyRoom()
        self.port = await listen_loopback(self, room)
        tony, seen = await self.rooms_client(TONY)
        await seen.next_of("peers")
        self.assertFalse(tony.rooms_available)
        self.assertEqual((tony.rooms, tony.default_room), ((), None))
        with self.assertRaises(RoomsUnavailable) as raised:
            tony.enter("dev")
        self.assertEqual(
            str(raised.exception),
            "this server has no rooms: everyone is in its one room",
        )
        with self.assertRaises(RoomsUnavailable):
            tony.send([], "hi", room="dev")
        tony.send([], "hi")
        await wait_until(lambda: b'"MSG": "hi"' in room.peers[0].received)
        self.assertEqual(room.drops, [])
        self.assertEqual(seen.of("rooms"), [])
        self.assertEqual(seen.of("room_peers"), [])

    async def test_an_enter_right_after_join_waits_for_the_servers_answer(
        self,
    ) -> None:
        # The client calls enter() in the JOIN's callback, before the
        # server said whether it has rooms: it is held, then refused.
        self.port = await listen_loopback(self, PickyRoom())
        observer = RoomsObserver()
        tony, _ = await self.client(TONY, observer=observer, join=False)
        entering: list[Any] = []
        joining = tony.join()
        joining.addCallback(lambda _: entering.append(tony.enter("dev")))
        await joining
        with self.assertRaises(RoomsUnavailable):
            await entering[0]
        refusal = await observer.next_of("room_refused")
        self.assertEqual(refusal.code, "ROOMS_UNAVAILABLE")


class ClusterRoomsTests(RoomsClientMixin, TestCase):
    async def test_rooms_across_two_cluster_nodes(self) -> None:
        redis = start_redis(self)
        one = await start_node(self, redis)
        two = await start_node(self, redis)
        # A loaded machine may hold a node back: the replies get 10 s.
        tony_seen, mary_seen = RoomsObserver(), RoomsObserver()
        tony, _ = await self.client(TONY, 10.0, observer=tony_seen, port=one.port)
        mary, _ = await self.client(MARY, 10.0, observer=mary_seen, port=two.port)
        await wait_until(lambda: len(tony.peers) == 2, what="both", timeout=30)
        self.assertTrue(tony.rooms_available)
        self.assertEqual(await tony.enter("#dev"), "")
        self.assertEqual(await mary.enter("dev"), "")
        await wait_until(
            lambda: tony.room_peers("dev") == (Peer(*TONY), Peer(*MARY)),
            what="dev's roster",
            timeout=30,
        )
        tony.set_room("dev", topic="the build")
        self.assertEqual(
            await mary_seen.next_of("topic"), ("dev", "the build", TONY[1])
        )
        tony.send([], "build is red", room="dev")
        message = await mary_seen.next_of("message")
        self.assertEqual(
            (message.kind, message.room, message.text), (ALL, "dev", "build is red")
        )
        mary.exit("dev")
        await wait_until(
            lambda: tony.room_peers("dev") == (Peer(*TONY),), what="left", timeout=30
        )
        # Neither heard that rooms are unavailable, nor had an error.
        self.assertEqual(
            tony_seen.of("rooms_unavailable") + mary_seen.of("rooms_unavailable"), []
        )
        self.assertEqual(tony_seen.of("error") + mary_seen.of("error"), [])
