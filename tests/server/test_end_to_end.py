"""End-to-end tests over real loopback TCP against the ``twistd muca`` service."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from muca.server.connection import ChatProtocol
from muca.server.context import NodeContext
from muca.server.node import ChatFactory
from tests.support import (
    OKAY,
    OKAY_V2,
    OriginalClient,
    RawClient,
    connect,
    join,
    join_all,
    msg,
    roster,
    send,
    start_server,
    start_service,
    strip_ts,
)

TONY = ("Tony", "Tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")
PETER = ("Peter", "peter@hku.hk")


class EndToEndTestCase(TestCase):
    """A real server per test, on loopback."""

    async def assertError(self, client: RawClient, code: str) -> dict[str, Any]:
        """The client's next object is an ERROR with this code."""
        error = await client.next_object()
        self.assertEqual((error["CMD"], error["CODE"]), ("ERROR", code), error)
        self.assertTrue(error["REASON"])
        return error


class SeedScenarioTests(EndToEndTestCase):
    """The original assignment's walk-through: four users, every update."""

    async def test_four_users_chat_leave_rejoin_and_duplicates(self) -> None:
        port = await start_server(self)
        who = [TONY, MARY, HENRY, PETER]
        tony, mary, henry, peter = await join_all(self, port, who)

        # Private, group and broadcast.
        mary.send_json(send("Where are you?", [TONY[1]], MARY[1]))
        self.assertEqual(
            strip_ts(await tony.next_object()),
            msg("PRIVATE", "Where are you?", MARY[1]),
        )
        tony.send_json(send("In the lab", [MARY[1], PETER[1]], TONY[1]))
        expected = msg("GROUP", "In the lab", TONY[1], [MARY[1], PETER[1]])
        self.assertEqual(strip_ts(await mary.next_object()), expected)
        self.assertEqual(strip_ts(await peter.next_object()), expected)
        henry.send_json(send("Hello everyone", [], HENRY[1]))
        for other in (tony, mary, peter):
            self.assertEqual(
                strip_ts(await other.next_object()),
                msg("ALL", "Hello everyone", HENRY[1]),
            )

        # Henry leaves: the others get the new list.
        await henry.close()
        for other in (tony, mary, peter):
            self.assertEqual(await other.next_object(), roster(TONY, MARY, PETER))

        # Henry rejoins at the end.
        henry = await connect(self, port)
        henry.send_json(join(*HENRY))
        rejoined = roster(TONY, MARY, PETER, HENRY)
        self.assertEqual(await henry.next_objects(2), [OKAY, rejoined])
        for other in (tony, mary, peter):
            self.assertEqual(await other.next_object(), rejoined)

        # Duplicate user id, then duplicate nickname: refused, nobody notices.
        twin = await connect(self, port)
        twin.send_json(join("Tony2", TONY[1]))
        ack = await twin.next_object()
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "UID_TAKEN"))
        twin.send_json(join("Tony", "tony2@hku.hk"))
        ack = await twin.next_object()
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "NICK_TAKEN"))

        # The first sessions are untouched: nothing arrived for them meanwhile.
        henry.send_json(send("still here?", [], HENRY[1]))
        for other in (tony, mary, peter):
            got = await other.next_object()
            self.assertEqual(strip_ts(got), msg("ALL", "still here?", HENRY[1]))
        for client in (tony, mary, henry, peter, twin):
            self.assertEqual(client.pending(), [])
            self.assertIsNone(client.lost)


class ErrorTests(EndToEndTestCase):
    """Every ERROR and ACK FAIL case, over a real socket."""

    async def test_every_error_case(self) -> None:
        port = await start_server(self)
        tony, mary = await join_all(self, port, [TONY, MARY])
        lurker = await connect(self, port)

        lurker.send_json(send("hi", [], TONY[1]))
        await self.assertError(lurker, "NOT_JOINED")
        lurker.send(b"{this is not json}\n")
        await self.assertError(lurker, "BAD_JSON")
        lurker.send(b"[1, 2]\n")
        await self.assertError(lurker, "BAD_JSON")
        lurker.send(b'{"CMD": "DANCE"}\n')
        await self.assertError(lurker, "BAD_COMMAND")
        lurker.send(b'{"CMD": "SEND", "MSG": 1, "TO": [], "FROM": "x"}\n')
        await self.assertError(lurker, "BAD_COMMAND")
        lurker.send_json(join("ALL", "all@hku.hk"))
        ack = await lurker.next_object()
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "BAD_JOIN"))

        tony.send_json(send("me", [TONY[1]], TONY[1]))
        await self.assertError(tony, "NO_RECIPIENT")
        tony.send_json(send("forged", [], MARY[1]))
        await self.assertError(tony, "FROM_MISMATCH")
        tony.send_json(send("hey", ["ghost@hku.hk", MARY[1]], TONY[1]))
        error = await self.assertError(tony, "UNKNOWN_RECIPIENT")
        self.assertIn("ghost@hku.hk", error["REASON"])
        self.assertEqual(
            strip_ts(await mary.next_object()), msg("GROUP", "hey", TONY[1], [MARY[1]])
        )
        tony.send_json(join("Tony", "again@hku.hk"))
        ack = await tony.next_object()
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "ALREADY_JOINED"))

        # None of that closed anything or reached anyone else.
        self.assertEqual(mary.pending(), [])
        for client in (tony, mary, lurker):
            self.assertIsNone(client.lost)

    async def test_frame_too_long_in_original_framing_gets_error_and_close(
        self,
    ) -> None:
        port = await start_server(self, "--max-frame", "1000")
        (tony,) = await join_all(self, port, [TONY])
        mary = await connect(self, port)
        mary.send_json(join(*MARY), newline=False)
        self.assertEqual(await mary.next_objects(2), [OKAY, roster(TONY, MARY)])
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))
        mary.send(b'{"CMD": "SEND", "MSG": "' + b"x" * 5000)
        await self.assertError(mary, "FRAME_TOO_LONG")
        await mary.closed()
        self.assertTrue(mary.lost.check(ConnectionDone))
        self.assertEqual(await tony.next_object(), roster(TONY))

    async def test_native_line_too_long_gets_error_and_the_connection_goes_on(
        self,
    ) -> None:
        port = await start_server(self, "--max-frame", "1000")
        tony, mary = await join_all(self, port, [TONY, MARY])
        # Sent in pieces: the server drops it as it comes, never holding it.
        await mary.send_slowly(
            b'{"CMD": "SEND", "MSG": "' + b"x" * 5000 + b'", "TO": []}\n', chunk=700
        )
        await self.assertError(mary, "FRAME_TOO_LONG")
        mary.send_json(send("after", [], MARY[1]))
        self.assertEqual((await tony.next_object())["MSG"], "after")
        self.assertEqual(mary.pending(), [])
        self.assertIsNone(mary.lost)


class StreamTests(EndToEndTestCase):
    """Whatever the segments, the server sees the same commands."""

    async def test_stream_sent_byte_by_byte(self) -> None:
        port = await start_server(self)
        (tony,) = await join_all(self, port, [TONY])
        mary = await connect(self, port)
        stream = (
            json.dumps(join(*MARY))
            + "\n"
            + json.dumps(send('héllo }{ "x"', [TONY[1]], MARY[1]), ensure_ascii=False)
            + "\n"
        ).encode()
        await mary.send_slowly(stream)
        self.assertEqual(await mary.next_objects(2), [OKAY, roster(TONY, MARY)])
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))
        got = await tony.next_object()
        self.assertEqual(got["MSG"], 'héllo }{ "x"')

    async def test_frame_split_at_every_point(self) -> None:
        # Hundreds of frames at once: more than the default rate limit.
        port = await start_server(self, "--rate-limit", "0")
        tony, mary = await join_all(self, port, [TONY, MARY])
        frames = []
        for framing_newline in (True, False):
            frame = json.dumps(
                send("ü}{ split here", [TONY[1]], MARY[1]), ensure_ascii=False
            )
            data = (frame + "\n" if framing_newline else frame).encode()
            frames += [(data, cut) for cut in range(1, len(data))]
        for data, cut in frames:
            await mary.send_slowly(data[:cut], chunk=cut)
            await mary.send_slowly(data[cut:], chunk=len(data))
        got = await tony.next_objects(len(frames), timeout=20)
        self.assertEqual({o["MSG"] for o in got}, {"ü}{ split here"})
        self.assertEqual(mary.pending(), [])

    async def test_two_messages_in_one_segment(self) -> None:
        port = await start_server(self)
        tony, mary = await join_all(self, port, [TONY, MARY])
        mary.send(
            json.dumps(send("one", [], MARY[1])).encode()
            + b"\n"
            + json.dumps(send("two", [TONY[1]], MARY[1])).encode()
            + b"\n"
        )
        got = await tony.next_objects(2)
        self.assertEqual(
            [strip_ts(o) for o in got],
            [msg("ALL", "one", MARY[1]), msg("PRIVATE", "two", MARY[1])],
        )
        tony.send(
            json.dumps(send("three", [], TONY[1])).encode()
            + json.dumps(send("four", [], TONY[1])).encode()
        )
        self.assertEqual(
            [o["MSG"] for o in await mary.next_objects(2)], ["three", "four"]
        )

    async def test_join_and_message_in_one_segment(self) -> None:
        port = await start_server(self)
        (tony,) = await join_all(self, port, [TONY])
        mary = await connect(self, port)
        mary.send(
            json.dumps(join(*MARY)).encode()
            + json.dumps(send("first", [], MARY[1])).encode()
        )
        self.assertEqual(await mary.next_objects(2), [OKAY, roster(TONY, MARY)])
        got = await tony.next_objects(2)
        self.assertEqual(got[0], roster(TONY, MARY))
        self.assertEqual(strip_ts(got[1]), msg("ALL", "first", MARY[1]))


class MixedRoomTests(EndToEndTestCase):
    """Issue 2's "done when": four original-framing clients and four native
    ones chat together through one server."""

    async def test_original_and_native_clients_chat_together(self) -> None:
        port = await start_server(self)
        originals = [(f"Orig{i}", f"orig{i}@hku.hk") for i in range(4)]
        natives = [(f"Nat{i}", f"nat{i}@hku.hk") for i in range(4)]
        who = [
            p for pair in zip(originals, natives, strict=True) for p in pair
        ]  # interleaved
        clients: list[RawClient] = []
        for i, (nickname, uid) in enumerate(who):
            original = i % 2 == 0
            client = await connect(self, port, OriginalClient if original else None)
            client.send_json(
                join(nickname, uid) if original else join(nickname, uid, V=2)
            )
            expected = roster(*who[: i + 1])
            ack = OKAY if original else OKAY_V2
            self.assertEqual(await client.next_objects(2), [ack, expected])
            for earlier in clients:
                self.assertEqual(await earlier.next_object(), expected)
            clients.append(client)

        uids = [uid for _, uid in who]
        expected: dict[int, list[dict[str, Any]]] = {i: [] for i in range(8)}
        for i, client in enumerate(clients):
            text = f'from {uids[i]}: ü €}}{{"q"'
            client.send_json(send(text + " all", [], uids[i]))
            for j in range(8):
                if j != i:
                    expected[j].append(msg("ALL", text + " all", uids[i]))
            j = (i + 1) % 8
            client.send_json(send(text + " private", [uids[j]], uids[i]))
            expected[j].append(msg("PRIVATE", text + " private", uids[i]))
            group = [uids[(i + 3) % 8], uids[(i + 6) % 8]]
            client.send_json(send(text + " group", group, uids[i]))
            for uid in group:
                expected[uids.index(uid)].append(
                    msg("GROUP", text + " group", uids[i], group)
                )

        for i, client in enumerate(clients):
            got = await client.next_objects(len(expected[i]))
            got = [strip_ts(o) for o in got]
            # Per sender, the order sent; across senders, any interleaving.
            for sender in uids:
                self.assertEqual(
                    [o for o in got if o["FROM"] == sender],
                    [o for o in expected[i] if o["FROM"] == sender],
                )
            self.assertEqual(len(got), len(expected[i]))

        for i, client in enumerate(clients):
            if i % 2 == 0:
                self.assertTrue(bytes(client.received).isascii())
                self.assertNotIn(b"\n", client.received)
            else:
                self.assertEqual(client.received.count(b"\n"), len(client.objects))
            self.assertEqual(client.pending(), [])


class ServerSideTestCase(TestCase):
    """Tests that look at the server's side of one real loopback connection."""

    async def connected(self) -> tuple[ChatProtocol, socket.socket]:
        """A real loopback connection: the server's protocol and a raw socket."""
        factory = ChatFactory(NodeContext.alone(reactor))
        protocols: list[ChatProtocol] = []
        build = factory.buildProtocol

        def remember(address: object) -> ChatProtocol:
            protocol = build(address)
            protocols.append(protocol)
            return protocol

        factory.buildProtocol = remember
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = socket.create_connection(("127.0.0.1", port.getHost().port), 5)
        self.addCleanup(client.close)
        for _ in range(100):
            if protocols:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(protocols, "the server did not accept")
        self.addCleanup(protocols[0].transport.loseConnection)
        client.settimeout(5)
        return protocols[0], client


class ReplyWritingTests(ServerSideTestCase):
    """Replies (ACK, ERROR) leave at once, yet never overtake queued bytes."""

    async def test_reply_is_on_the_wire_before_the_reactor_runs_again(self) -> None:
        protocol, client = await self.connected()
        protocol.send({"CMD": "ACK", "TYPE": "OKAY"})
        # No reactor turn in between: the bytes were sent by send() itself.
        self.assertEqual(client.recv(100), b'{"CMD":"ACK","TYPE":"OKAY"}\n')

    async def test_reply_waits_behind_bytes_already_queued(self) -> None:
        protocol, client = await self.connected()
        protocol.transport.write(b'{"CMD":"LIST","DATA":[]}\n')
        protocol.send({"CMD": "ACK", "TYPE": "OKAY"})
        received = b""
        for _ in range(100):
            if received.count(b"\n") == 2:
                break
            await deferLater(reactor, 0.01, lambda: None)
            client.setblocking(False)
            try:
                received += client.recv(100)
            except BlockingIOError:
                pass
        self.assertEqual(
            received, b'{"CMD":"LIST","DATA":[]}\n{"CMD":"ACK","TYPE":"OKAY"}\n'
        )


class SocketOptionTests(ServerSideTestCase):
    """What the server sets on every TCP connection."""

    async def test_nodelay_and_keepalive_that_finds_a_dead_peer_in_minutes(
        self,
    ) -> None:
        protocol, _ = await self.connected()
        sock = protocol.transport.getHandle()
        self.assertTrue(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        self.assertTrue(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
        idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
        count = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
        self.assertLessEqual(idle + interval * count, 180)


class UnixSocketTests(TestCase):
    async def test_listen_unix_serves_as_tcp_does(self) -> None:
        folder = tempfile.mkdtemp(prefix="muca-")  # short: socket paths are limited
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        path = os.path.join(folder, "chat.sock")
        await start_service(self, "--listen", f"unix:{path}")
        clients = []
        for who in (TONY, MARY):
            endpoint = UNIXClientEndpoint(reactor, path, timeout=10)
            client = await connectProtocol(endpoint, RawClient())
            self.addCleanup(client.close)
            client.send_json(join(*who))
            clients.append(client)
        tony, mary = clients
        self.assertEqual(await tony.next_objects(2), [OKAY, roster(TONY)])
        self.assertEqual(await mary.next_objects(2), [OKAY, roster(TONY, MARY)])
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))
        mary.send_json(send("over a UNIX socket", [TONY[1]], MARY[1]))
        got = strip_ts(await tony.next_object())
        self.assertEqual(got, msg("PRIVATE", "over a UNIX socket", MARY[1]))
