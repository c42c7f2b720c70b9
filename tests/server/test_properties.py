"""Property-based tests (hypothesis): the decoder against any cut of any
stream, and the server's registry against random interleavings of joins,
messages, leaves and broken connections. Example counts stay modest so that
the suite stays fast."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionLost
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from muca.protocol.wire import (
    STREAM_FRAMINGS,
    BadFrame,
    FrameDecoder,
    FrameTooLong,
    Framing,
    encode,
)
from tests.support import MemoryPeer, MemoryServer, split_objects

FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Pieces that make decoders stumble: structure, strings, escapes, newlines,
# non-UTF-8 bytes, objects, lists of objects, braces inside strings.
TOKENS = st.sampled_from(
    [
        b"{", b"}", b"[", b"]", b'"', b"\\", b"\n", b"\r", b" ", b"\t", b":",
        b",", b"a", b"1", b"\xff", b"\xc3\xbc", b'{"CMD":"JOIN"}', b'{"a":"}{"}',
        b'"x{y"', b'[{"b":2}]', b'{"n":{"m":[1,{"k":"\\""}]}}', b'"\\u00fc"',
    ]
)  # fmt: skip
JSON_OBJECTS = st.dictionaries(
    st.text(max_size=5),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=5,
    ),
    max_size=4,
)
STREAMS = st.one_of(
    st.lists(TOKENS, max_size=40).map(b"".join),
    st.binary(max_size=300),
    st.lists(
        st.tuples(JSON_OBJECTS, st.sampled_from([b"", b"\n", b"\r\n", b" "])),
        max_size=6,
    ).map(lambda items: b"".join(json.dumps(o).encode() + end for o, end in items)),
)


def decode(pieces: list[bytes], max_frame: int) -> list[Any]:
    """Every frame a fresh decoder yields for ``pieces``, then ``"TOO LONG"``
    if it gave up; checks it never holds more than a frame between calls."""
    decoder = FrameDecoder(max_frame)
    out: list[Any] = []
    for piece in pieces:
        try:
            frames = decoder.feed(piece)
        except FrameTooLong as error:
            return [*out, *error.frames, "TOO LONG"]
        assert all(isinstance(f, dict | BadFrame) for f in frames), frames
        assert len(decoder._buffer) <= max_frame
        out += frames
    return out


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at ``points`` (in any order, repeats and overshoots ignored)."""
    points = sorted({p for p in points if 0 < p < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


class DecoderProperties(SynchronousTestCase):
    @FAST
    @given(
        STREAMS,
        st.lists(st.integers(0, 400), max_size=10),
        st.sampled_from([8, 32, 1000]),
    )
    def test_any_stream_cut_anywhere_gives_the_same_frames(
        self, data: bytes, points: list[int], max_frame: int
    ) -> None:
        self.assertEqual(
            decode(cut(data, points), max_frame), decode([data], max_frame)
        )

    @settings(max_examples=60, deadline=None)
    @given(STREAMS, st.sampled_from([8, 1000]))
    def test_byte_by_byte_gives_the_same_frames(
        self, data: bytes, max_frame: int
    ) -> None:
        one_by_one = [data[i : i + 1] for i in range(len(data))]
        self.assertEqual(decode(one_by_one, max_frame), decode([data], max_frame))

    @FAST
    @given(
        st.lists(JSON_OBJECTS, max_size=8),
        st.sampled_from(STREAM_FRAMINGS),
        st.lists(st.integers(0, 2000), max_size=10),
    )
    def test_encoded_objects_come_back_whatever_the_cuts(
        self, objects: list[dict], framing: Framing, points: list[int]
    ) -> None:
        data = b"".join(encode(obj, framing) for obj in objects)
        self.assertEqual(decode(cut(data, points), 1 << 20), objects)


class ServerFuzzProperties(SynchronousTestCase):
    @FAST
    @given(
        st.lists(
            st.one_of(
                STREAMS,
                st.sampled_from(
                    [
                        b'{"CMD":"JOIN","UN":"Fuzz","UID":"fuzz"}\n',
                        b'{"CMD":"SEND","MSG":"m","TO":[],"FROM":"fuzz"}\n',
                        b'{"CMD":"SEND","MSG":"m","TO":["tony","x"],"FROM":"fuzz"}',
                    ]
                ),
            ),
            max_size=8,
        ),
        st.lists(st.integers(0, 600), max_size=8),
    )
    def test_any_bytes_never_raise_nor_log_a_failure(
        self, chunks: list[bytes], points: list[int]
    ) -> None:
        server = MemoryServer(max_frame=256, rate=None)
        try:
            tony = server.connect()
            tony.send_json({"CMD": "JOIN", "UN": "Tony", "UID": "tony"})
            tony.take()
            fuzzer = server.connect()
            with capturedLogs() as events:
                for piece in cut(b"".join(chunks), points):
                    fuzzer.send(piece)
                fuzzer.take_bytes()
                fuzzer.lose()
            failures = [e for e in events if e.get("log_failure") is not None]
            self.assertEqual(failures, [])
            # Tony saw at most the fuzzer come and go, and its messages.
            for obj in tony.take():
                self.assertIn(obj["CMD"], ("LIST", "MSG"), obj)
            self.assertEqual([m.uid for m in server.factory.room.members()], ["tony"])
        finally:
            server.stop()


# The registry property: a small pool of names so that collisions happen.
NAMES = [("Tony", "tony"), ("Mary", "mary"), ("Henry", "henry"), ("Tony", "t2")]
ACTIONS = st.one_of(
    st.tuples(st.just("connect"), st.booleans()),
    st.tuples(st.just("join"), st.integers(0, 7), st.integers(0, len(NAMES) - 1)),
    st.tuples(
        st.just("send"),
        st.integers(0, 7),
        st.lists(st.sampled_from([n[1] for n in NAMES] + ["ghost"]), max_size=3),
    ),
    st.tuples(st.just("leave"), st.integers(0, 7)),
    st.tuples(st.just("break"), st.integers(0, 7)),
    st.tuples(st.just("garbage"), st.integers(0, 7)),
    st.tuples(st.just("wait"), st.sampled_from([0.0, 0.05, 0.2])),
)


class Client:
    """What one in-memory client saw: its roster, its ACKs, its messages."""

    def __init__(self, peer: MemoryPeer, presence: bool) -> None:
        self.peer = peer
        self.presence = presence
        self.view: list[tuple[str, str]] | None = None
        self.acks: list[dict] = []
        self.messages: list[dict] = []
        self.open = True

    def read(self) -> None:
        self.peer.server.clock.advance(0)  # fan-out is written at the turn's end
        objects, rest = split_objects(self.peer.transport.value().decode("utf-8"))
        assert rest == "", rest
        self.peer.transport.clear()
        for obj in objects:
            cmd = obj["CMD"]
            if cmd == "ACK":
                self.acks.append(obj)
            elif cmd == "LIST":
                self.view = [(e["UN"], e["UID"]) for e in obj["DATA"]]
            elif cmd == "PRESENCE":
                assert self.view is not None, "PRESENCE before any LIST"
                left = set(obj["LEFT"])
                self.view = [e for e in self.view if e[1] not in left]
                self.view += [(e["UN"], e["UID"]) for e in obj["JOINED"]]
            elif cmd == "MSG":
                self.messages.append(obj)


class RegistryProperties(SynchronousTestCase):
    @settings(
        max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(
        st.lists(st.booleans(), min_size=2, max_size=6),
        st.lists(ACTIONS, min_size=5, max_size=40),
        st.sampled_from([0.0, 0.1]),
    )
    def test_registry_is_the_joined_connections_and_every_list_is_true(
        self, presence: list[bool], actions: list[tuple], list_interval: float
    ) -> None:
        server = MemoryServer(list_interval=list_interval, rate=None)
        try:
            connects = [("connect", p) for p in presence]
            self.run_actions(server, connects + actions)
        finally:
            server.stop()

    def run_actions(self, server: MemoryServer, actions: list[tuple]) -> None:
        """Run ``actions``; after each, the registry and every view must be true."""
        clients: list[Client] = []
        joined: dict[int, tuple[str, str]] = {}  # the model: client -> name

        def live(index: int) -> Client | None:
            if not clients:
                return None
            client = clients[index % len(clients)]
            return client if client.open else None

        for action in actions:
            kind = action[0]
            if kind == "connect":
                clients.append(Client(server.connect(), presence=action[1]))
                continue
            if kind == "wait":
                server.clock.advance(action[1])
                continue
            client = live(action[1])
            if client is None:
                continue
            index = clients.index(client)
            if kind == "join":
                nickname, uid = NAMES[action[2]]
                fields = {"CMD": "JOIN", "UN": nickname, "UID": uid, "V": 2}
                if client.presence:
                    fields["CAPS"] = ["presence-delta"]
                expect = index not in joined and all(
                    nickname != n and uid != u for n, u in joined.values()
                )
                client.peer.send_json(fields)
                client.read()
                self.assertEqual(client.acks[-1]["TYPE"] == "OKAY", expect, action)
                if expect:
                    joined[index] = (nickname, uid)
            elif kind == "send":
                before = {i: len(c.messages) for i, c in enumerate(clients)}
                sender = joined.get(index, ("?", "nobody"))[1]
                client.peer.send_json(
                    {"CMD": "SEND", "MSG": "hi", "TO": action[2], "FROM": sender}
                )
                for other in clients:
                    other.read()
                wanted = {u for u in action[2] if u != sender}
                got = {i for i, c in enumerate(clients) if len(c.messages) > before[i]}
                if index not in joined or (action[2] and not wanted):
                    expected = set()
                else:
                    expected = {
                        i
                        for i, (_, u) in joined.items()
                        if i != index and (not action[2] or u in wanted)
                    }
                self.assertEqual(got, expected, action)
            elif kind == "garbage":
                client.peer.send(b'[{"CMD":"JOIN"}]\n\xff\n')
            else:  # leave (clean close) or break (connection lost)
                if kind == "leave":
                    client.peer.lose()
                else:
                    client.peer.protocol.connectionLost(Failure(ConnectionLost()))
                client.open = False
                joined.pop(index, None)
            self.check(server, clients, joined)
        self.check(server, clients, joined)

    def check(
        self,
        server: MemoryServer,
        clients: list[Client],
        joined: dict[int, tuple[str, str]],
    ) -> None:
        # Let any coalesced roster update go out, then compare.
        server.clock.advance(server.factory.config.list_interval)
        room = server.factory.room
        members = room.members()
        self.assertEqual(
            {m.connection for m in members},
            {clients[i].peer.protocol for i in joined},
        )
        truth = [(m.nickname, m.uid) for m in members]
        self.assertEqual(sorted(truth), sorted(joined.values()))
        for index in joined:
            client = clients[index]
            client.read()
            self.assertEqual(client.view, truth)
