"""Sending with ChatClient: private, group and broadcast messages as the
receivers see them, the server's errors, sending before joining, and the
longest message allowed."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from muca.client.errors import (
    ClientError,
    MessageTooLong,
    NotConnected,
)
from muca.protocol.messages import (
    ALL,
    GROUP,
    PRIVATE,
    UNKNOWN_RECIPIENT,
)
from tests.support import start_server
from tests.support.client import (
    HENRY,
    MARY,
    TONY,
    ClientTestCase,
    ClientTestMixin,
    listen_loopback,
    wait_until,
)
from tests.support.servers import PickyRoom


class SendTests(ClientTestCase):
    async def test_messages_arrive_with_type_sender_and_nickname(self) -> None:
        tony, _ = await self.client(TONY)
        mary, mary_seen = await self.client(MARY)
        henry, henry_seen = await self.client(HENRY)
        await mary_seen.next_of("peers", 2)
        tony.send([MARY[1]], "just you")
        tony.send([MARY[1], HENRY[1]], "you two")
        tony.send([], "everyone")
        await mary_seen.next_of("message", 3)
        kinds = [
            (m.kind, m.sender_uid, m.sender_nickname, m.text)
            for m in mary_seen.of("message")
        ]
        self.assertEqual(
            kinds,
            [
                (PRIVATE, TONY[1], "Tony", "just you"),
                (GROUP, TONY[1], "Tony", "you two"),
                (ALL, TONY[1], "Tony", "everyone"),
            ],
        )
        group = await henry_seen.next_of("message")
        self.assertEqual(set(group.to), {MARY[1], HENRY[1]})

    async def test_a_message_to_nobody_known_comes_back_refused(self) -> None:
        tony, observer = await self.client(TONY)
        sent = tony.send(["nobody@hku.hk"], "hello?")
        refusal = await observer.next_of("send_refused")
        self.assertIs(refusal.message, sent)
        self.assertEqual((refusal.code, refusal.partial), (UNKNOWN_RECIPIENT, False))
        self.assertIn("nobody@hku.hk", refusal.reason)
        self.assertEqual(observer.of("error"), [])

    async def test_send_before_join_raises_not_connected(self) -> None:
        client, _ = await self.client(TONY, join=False)
        with self.assertRaises(NotConnected):
            client.send([], "too early")
        idle = ChatClient(reactor, *TONY)
        with self.assertRaises(NotConnected):
            idle.send([], "not even connected")


class MessageSizeTests(ClientTestMixin, TestCase):
    async def setUp(self) -> None:
        self.port = await start_server(self)

    async def test_message_over_the_default_limit_is_refused_and_nothing_sent(
        self,
    ) -> None:
        tony, _ = await self.client(TONY)
        mary, mary_seen = await self.client(MARY)
        with self.assertRaises(MessageTooLong) as raised:
            tony.send([MARY[1]], "x" * 72_000)
        self.assertIsInstance(raised.exception, ClientError)
        # 65536 bytes, less the SEND object around the text.
        overhead = len(
            '{"CMD":"SEND","MSG":"","TO":["mary@hku.hk"],"FROM":"Tony@hku.hk"}'
        )
        self.assertEqual(
            str(raised.exception),
            f"message too long: {72_000 + overhead:,} bytes, the server takes at"
            " most 65,536 (the whole SEND, in UTF-8); the first"
            f" {65536 - overhead:,} of its 72,000 characters fit",
        )
        tony.send([MARY[1]], "x" * (65536 - overhead))  # the longest that fits
        tony.send([MARY[1]], "after")
        await mary_seen.next_of("message", 2)
        texts = [m.text for m in mary_seen.of("message")]
        self.assertEqual([len(t) for t in texts], [65536 - overhead, 5])
        self.assertTrue(tony.joined)

    async def test_the_servers_max_frame_from_ack_is_the_limit(self) -> None:
        room = PickyRoom(max_frame=200)
        self.port = await listen_loopback(self, room)
        tony, _ = await self.client(TONY)
        self.assertEqual(tony.server_max_frame, 200)
        # Original framing (the server does not frame by lines): ASCII
        # escapes count six bytes for "é".
        overhead = len('{"CMD": "SEND", "MSG": "", "TO": [], "FROM": "Tony@hku.hk"}')
        most = (200 - overhead) // 6
        with self.assertRaises(MessageTooLong) as raised:
            tony.send([], "é" * (most + 1))
        self.assertEqual(
            str(raised.exception),
            f"message too long: {overhead + 6 * (most + 1)} bytes, the server takes"
            f" at most 200 (the whole SEND, in UTF-8); the first {most} of its"
            f" {most + 1} characters fit",
        )
        before = bytes(room.peers[0].received)
        tony.send([], "é" * most)
        await wait_until(lambda: room.peers[0].received != before, what="send")
