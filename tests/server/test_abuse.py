"""Hostile and broken clients against a real server over loopback: each gets
its ERROR / ACK FAIL or a close, never a traceback, and the well-behaved
clients never notice. The memory tests run a real ``twistd -n muca`` and
read its peak RSS (VmHWM) from /proc."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.logger import Logger, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import (
    OKAY,
    MemoryServer,
    OriginalClient,
    RawClient,
    connect,
    join,
    join_all,
    roster,
    send,
    start_server,
)
from tests.support.twistd import (
    WAIT,
    open_clients,
    raise_open_file_limit,
    start_twistd,
)

log = Logger()
TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")
MB = 1024 * 1024

# (what, bytes sent on a fresh connection, the codes that must come back:
# ERROR codes, or "FAIL:CODE" for ACK FAIL, "OKAY" for ACK OKAY).
ABUSES: list[tuple[str, bytes, list[str]]] = [
    ("not JSON", b"hello there\n", ["BAD_JSON"]),
    ("not an object", b'"JOIN"\n42\nnull\n[1,2]\n', ["BAD_JSON"] * 4),
    ("array of commands", b'[{"CMD":"NOPE"}]\n',
     ["BAD_JSON", "BAD_COMMAND", "BAD_JSON"]),
    ("non-UTF-8 bytes", b'{"CMD":"JOIN","UN":"\xff\xfe","UID":"x"}\n', ["BAD_JSON"]),
    ("control bytes", b"\x01\x02\x1b[2J\n", ["BAD_JSON"]),
    ("garbage with no newline", b"hello", ["BAD_JSON"]),
    ("a number with no newline", b"42", ["BAD_JSON"]),
    ("unknown CMD", b'{"CMD":"SHUTDOWN"}\n', ["BAD_COMMAND"]),
    ("missing CMD", b'{"UN":"X"}\n', ["BAD_COMMAND"]),
    ("CMD not a string", b'{"CMD":["JOIN"]}\n', ["BAD_COMMAND"]),
    ("JOIN with wrong types", b'{"CMD":"JOIN","UN":7,"UID":{"a":1}}\n',
     ["FAIL:BAD_JOIN"]),
    ("JOIN with a lone surrogate", b'{"CMD":"JOIN","UN":"\\ud800","UID":"x"}\n',
     ["FAIL:BAD_JOIN"]),
    ("JOIN with a huge integer", b'{"CMD":"JOIN","UN":"X","UID":"x","V":'
     + b"9" * 5000 + b"}\n", ["BAD_JSON"]),
    ("JOIN with NaN version", b'{"CMD":"JOIN","UN":"Nan","UID":"nan","V":NaN}\n',
     ["OKAY"]),
    ("JOIN twice", b'{"CMD":"JOIN","UN":"Two","UID":"two"}\n'
     b'{"CMD":"JOIN","UN":"Two2","UID":"two2"}\n', ["OKAY", "FAIL:ALREADY_JOINED"]),
    ("JOIN as someone else's id", b'{"CMD":"JOIN","UN":"Evil","UID":"tony@hku.hk"}\n',
     ["FAIL:UID_TAKEN"]),
    ("SEND before JOIN", b'{"CMD":"SEND","MSG":"x","TO":[],"FROM":"tony@hku.hk"}\n',
     ["NOT_JOINED"]),
    ("SEND with wrong types", b'{"CMD":"JOIN","UN":"T","UID":"t"}\n'
     b'{"CMD":"SEND","MSG":null,"TO":"all","FROM":"t"}\n', ["OKAY", "BAD_COMMAND"]),
    ("SEND as someone else", b'{"CMD":"JOIN","UN":"F","UID":"f"}\n'
     b'{"CMD":"SEND","MSG":"x","TO":[],"FROM":"tony@hku.hk"}\n',
     ["OKAY", "FROM_MISMATCH"]),
    ("deeply nested JSON", b'{"CMD":' + b"[" * 20000 + b"]" * 20000 + b"}\n",
     ["BAD_JSON"]),
    ("deeply nested list", b'{"CMD":"X"}\n' + b"[" * 30000 + b"\n",
     ["BAD_COMMAND", "BAD_JSON"]),
    ("unbalanced braces", b"}}}}\n{{{{\n", ["BAD_JSON", "BAD_JSON"]),
    ("a first frame over 64 KiB", b'{"CMD":"SEND","MSG":"' + b"a" * 70000 + b'"}\n',
     ["FRAME_TOO_LONG", "closed"]),
    ("a native line over 64 KiB", b'{"CMD":"NOPE"}\n'
     b'{"CMD":"SEND","MSG":"' + b"a" * 70000 + b'"}\n{"CMD":"NOPE"}\n',
     ["BAD_COMMAND", "FRAME_TOO_LONG", "BAD_COMMAND"]),
    ("an original frame over 64 KiB", b'{"CMD":"NOPE"}'
     b'{"CMD":"SEND","MSG":"' + b"a" * 70000 + b'"}',
     ["BAD_COMMAND", "FRAME_TOO_LONG", "closed"]),
]  # fmt: skip


def codes(objects: list[Any]) -> list[str]:
    """What came back, as in ABUSES."""
    result = []
    for obj in objects:
        if obj.get("CMD") == "ERROR":
            result.append(obj["CODE"])
        elif obj.get("CMD") == "ACK":
            result.append("OKAY" if obj["TYPE"] == "OKAY" else f"FAIL:{obj['CODE']}")
    return result


class ErrorWatch:
    """Collects every logged error or failure while installed."""

    def __init__(self, testcase: TestCase) -> None:
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self)
        testcase.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: dict) -> None:
        if event.get("log_failure") is not None or event.get("isError"):
            self.events.append(event)


class LogWatch:
    """Collects the server's own log lines (``muca.*``) while installed;
    :meth:`wait_for` fires when one containing a text shows."""

    def __init__(self, testcase: TestCase) -> None:
        self.lines: list[str] = []
        self._waiting: list[tuple[str, defer.Deferred[str]]] = []
        globalLogPublisher.addObserver(self)
        testcase.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: dict) -> None:
        if not str(event.get("log_namespace", "")).startswith("muca."):
            return
        line = formatEvent(event)
        self.lines.append(line)
        for text, found in list(self._waiting):
            if text in line:
                self._waiting.remove((text, found))
                found.callback(line)

    def wait_for(self, text: str) -> defer.Deferred[str]:
        """Fire with the first line (from now or before) containing ``text``."""
        for line in self.lines:
            if text in line:
                return defer.succeed(line)
        found: defer.Deferred[str] = defer.Deferred()
        self._waiting.append((text, found))
        return found.addTimeout(WAIT, reactor)


class MalformedInputTests(TestCase):
    async def test_every_abuse_gets_its_answer_and_the_others_never_notice(
        self,
    ) -> None:
        errors = ErrorWatch(self)
        port = await start_server(self)
        tony, mary = await join_all(self, port, [TONY, MARY])
        for what, data, expected in ABUSES:
            abuser = await connect(self, port)
            abuser.send(data)
            answers = [c for c in expected if c != "closed"]
            got = await abuser.next_objects(len(answers))
            self.assertEqual(codes(got), answers, what)
            if "closed" in expected:
                await abuser.closed()
            await abuser.close()
        # Joins by abusers came and went: until a last message from each,
        # each got roster updates and nothing else.
        tony.send_json(send("still here?", [MARY[1]], TONY[1]))
        mary.send_json(send("still here?", [TONY[1]], MARY[1]))
        for peer in (tony, mary):
            while (message := await peer.next_object())["CMD"] == "LIST":
                pass
            self.assertEqual(message["MSG"], "still here?")
        self.assertEqual(errors.events, [])

    async def test_garbage_from_an_original_peer_is_answered_without_a_newline(
        self,
    ) -> None:
        port = await start_server(self)
        abuser = await connect(self, port, OriginalClient)
        await abuser.send_slowly(b"null", chunk=2)
        self.assertEqual(codes(await abuser.next_objects(1)), ["BAD_JSON"])
        abuser.send_json(join(*TONY))
        self.assertEqual(await abuser.next_objects(2), [OKAY, roster(TONY)])

    async def test_byte_by_byte_slowloris_is_closed_at_the_join_timeout(self) -> None:
        # A byte every 0.1 s: were each byte to restart the 0.5 s timer, the
        # connection would outlive the 200 bytes (20 s) this sends at most.
        port = await start_server(self, "--join-timeout", "0.5")
        slow = await connect(self, port)
        endless = b'{"CMD":"JOIN","UN":"' + b"a" * 200
        for byte in endless:
            if slow.lost is not None:
                break
            slow.send(bytes([byte]))
            await deferLater(reactor, 0.1, lambda: None)
        self.assertIsNotNone(slow.lost, "still open after 200 bytes")
        self.assertEqual(slow.objects, [])

    async def test_a_flood_is_slowed_to_the_rate_and_nothing_is_lost(self) -> None:
        # 200/s instead of the default 20/s keeps the test short; the timing
        # itself is checked on a fake clock (FloodTimingTests, and
        # RateLimitTests in test_limits.py second by second).
        port = await start_server(self, "--rate-limit", "200", "--rate-burst", "50")
        tony, mary, henry = await join_all(self, port, [TONY, MARY, HENRY])
        started = time.monotonic()
        mary.send(b"".join(
            json.dumps(send(f"m{i}", [TONY[1]], MARY[1])).encode() + b"\n"
            for i in range(300)
        ))  # fmt: skip
        first = await tony.next_objects(50, timeout=WAIT)
        # Meanwhile the others chat as usual, ahead of the flood's end.
        henry.send_json(send("still here?", [TONY[1]], HENRY[1]))
        rest = await tony.next_objects(251, timeout=WAIT)
        elapsed = time.monotonic() - started
        texts = [m["MSG"] for m in first + rest if m["FROM"] == MARY[1]]
        self.assertEqual(texts, [f"m{i}" for i in range(300)])
        henrys = [i for i, m in enumerate(first + rest) if m["FROM"] == HENRY[1]]
        self.assertEqual(len(henrys), 1)
        # Unslowed, the 300 read at once would all go out before Henry's.
        self.assertLess(henrys[0], 300, "Henry's message waited behind the flood")
        # (300 - 50) / 200 = 1.25 s after the burst at the least; a loaded
        # machine only makes it longer.
        self.assertGreater(elapsed, 1.2)
        self.assertEqual(mary.pending(), [])  # no error: nothing was dropped

    async def test_repeated_joins_are_logged_once_and_slowed(self) -> None:
        # 1,000/s instead of the default 20/s keeps the test short.
        port = await start_server(self, "--rate-limit", "1000", "--rate-burst", "50")
        logs = LogWatch(self)
        (tony,) = await join_all(self, port, [TONY])
        repeats = 5000
        started = time.monotonic()
        tony.send(json.dumps(join(*TONY)).encode() * repeats)
        answers = await tony.next_objects(repeats, timeout=WAIT)
        elapsed = time.monotonic() - started
        self.assertEqual(set(codes(answers)), {"FAIL:ALREADY_JOINED"})
        # Each refused JOIN took a token: (5,000 - 50) / 1,000 s at least.
        self.assertGreater(elapsed, 4.5)
        await tony.close()
        summary = await logs.wait_for("more refused joins")
        self.assertIn(f"{repeats - 1} more refused joins", summary)
        self.assertIn("ALREADY_JOINED × 4999", summary)
        refusals = [line for line in logs.lines if "refused join" in line]
        self.assertEqual(len(refusals), 2, refusals)
        self.assertLess(len(logs.lines), 6, logs.lines)

    async def test_connections_past_the_per_address_cap_are_refused(self) -> None:
        port = await start_server(self, "--max-per-address", "3")
        tony, mary, _ = await join_all(self, port, [TONY, MARY, HENRY])
        refused = await connect(self, port)
        refused.send_json(join("Peter", "peter@hku.hk"))
        (ack,) = await refused.next_objects(1)
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "SERVER_FULL"))
        await refused.closed()
        await tony.close()
        # Mary sees Tony go: the server has counted his connection out.
        self.assertEqual(await mary.next_object(), roster(MARY, HENRY))
        again = await connect(self, port)
        again.send_json(join(*TONY))
        self.assertEqual(await again.next_object(), OKAY)


class SlowlorisTests(SynchronousTestCase):
    """The join timeout on a fake clock: it runs from the connection, and
    bytes that do not make a JOIN do not restart it."""

    def test_a_join_sent_a_byte_a_second_is_cut_at_the_timeout(self) -> None:
        server = MemoryServer(join_timeout=30)
        self.addCleanup(server.stop)
        slow = server.connect()
        line = json.dumps(join(*TONY)).encode() + b"\n"
        self.assertGreater(len(line), 40)  # it would be complete at 40 s or later
        for second, byte in enumerate(line[:30], start=1):
            slow.send(bytes([byte]))
            server.clock.advance(1)
            self.assertEqual(slow.closed_by_server, second == 30, second)
        self.assertEqual(slow.take(), [])
        slow.send(line[30:])  # the rest of the JOIN, too late
        self.assertEqual(slow.take(), [])
        self.assertNotIn(TONY[1], server.factory.room)


class FloodTimingTests(SynchronousTestCase):
    """The flood of test_a_flood_is_slowed_to_the_rate_and_nothing_is_lost,
    on a fake clock: 50 at once, the rest at 200 a second."""

    def test_the_flood_ends_after_its_burst_at_the_rate(self) -> None:
        server = MemoryServer(rate=200, burst=50)
        self.addCleanup(server.stop)
        tony, mary, henry = (server.connect() for _ in range(3))
        for peer, who in ((tony, TONY), (mary, MARY), (henry, HENRY)):
            peer.send_json(join(*who))
        server.clock.advance(10)  # buckets full again
        for peer in (tony, mary, henry):
            peer.take()
        mary.send(b"".join(
            json.dumps(send(f"m{i}", [TONY[1]], MARY[1])).encode() + b"\n"
            for i in range(300)
        ))  # fmt: skip
        henry.send_json(send("still here?", [TONY[1]], HENRY[1]))
        got = [(m["FROM"], m["MSG"]) for m in tony.take()]
        self.assertEqual(len(got), 51)
        self.assertIn((HENRY[1], "still here?"), got)
        # Time passes as on a reactor, in steps: 1.2 s, 240 more tokens.
        server.clock.pump([0.01] * 120)
        got += [(m["FROM"], m["MSG"]) for m in tony.take()]
        self.assertEqual(len(got), 51 + 240)
        server.clock.pump([0.01] * 5)
        got += [(m["FROM"], m["MSG"]) for m in tony.take()]
        texts = [text for uid, text in got if uid == MARY[1]]
        self.assertEqual(texts, [f"m{i}" for i in range(300)])
        self.assertEqual(mary.take(), [])  # no error: nothing was dropped
        self.assertEqual(server.clock.getDelayedCalls(), [])


def slow_reader(port: int, testcase: TestCase) -> socket.socket:
    """A joined client with a small receive buffer that never reads."""
    sock = socket.socket()
    testcase.addCleanup(sock.close)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", port))
    sock.sendall(json.dumps(join("Slow", "slow@hku.hk", V=2)).encode() + b"\n")
    return sock


class MemoryTests(TestCase):
    """Peak memory of a real server under abuse stays bounded."""

    timeout = 120

    async def test_slow_consumer_does_not_grow_the_server(self) -> None:
        # No history: what SQLite caches and the batches of 60 kB messages
        # on their way to it are not what this measures.
        server = await start_twistd(self, "--db", "none")
        senders = await open_clients(
            self,
            server.port,
            [
                json.dumps(join(f"S{i}", f"s{i}@hku.hk", V=2)).encode() + b"\n"
                for i in range(4)
            ],
        )
        await defer.gatherResults([s.acked for s in senders])
        reader_join = json.dumps(join("Reader", "reader@hku.hk", V=2)).encode()
        (reader,) = await open_clients(self, server.port, [reader_join + b"\n"])
        await reader.acked
        for client in (*senders, reader):
            client.keep = True
        slow_reader(server.port, self)
        await deferLater(reactor, 0.3, lambda: None)
        baseline = server.status("VmHWM")

        # Each sender: 10 messages of 60 kB every half second (20/s, the
        # default rate limit), for 4 s: about 19 MB for the slow reader. To
        # the two readers only, so that this test process has less to read.
        text = "x" * 60_000
        to = ["reader@hku.hk", "slow@hku.hk"]
        rounds, per_round = 8, 10
        for _ in range(rounds):
            for i, sender in enumerate(senders):
                sender.transport.write(
                    b"".join(
                        json.dumps(send(text, to, f"s{i}@hku.hk")).encode() + b"\n"
                        for _ in range(per_round)
                    )
                )
            await deferLater(reactor, 0.5, lambda: None)
        expected = rounds * per_round * len(senders)
        deadline = time.monotonic() + WAIT
        while reader.messages < expected and time.monotonic() < deadline:
            await deferLater(reactor, 0.1, lambda: None)
        peak = server.status("VmHWM")
        self.assertEqual(reader.messages, expected)
        for sender in senders:
            # No rate limit; once the slow reader is gone, it is unknown.
            errors = {json.loads(e)["CODE"] for e in sender.lines if b'"ERROR"' in e}
            self.assertLessEqual(errors, {"UNKNOWN_RECIPIENT"})
        # The slow reader was dropped and everyone got the list without it.
        lists = [line for line in reader.lines if line.startswith(b'{"CMD":"LIST"')]
        self.assertNotIn(b"slow@hku.hk", lists[-1])
        self.assertIn("slow consumer", server.process.output)
        self.assertNotIn("Traceback", server.process.output)
        growth = peak - baseline
        self.note(baseline, peak)
        # Without the limit the server would hold most of the ~19 MB.
        self.assertLess(growth, 12 * MB, f"peak {peak / MB:.1f} MiB")

    def note(self, baseline: int, peak: int) -> None:
        """Leave the figures in the test log (trial's _trial_temp/test.log)."""
        log.info(
            "{test}: server VmHWM {baseline:.1f} MiB before, {peak:.1f} MiB after",
            test=self.id(),
            baseline=baseline / MB,
            peak=peak / MB,
        )

    async def test_10_mb_frame_does_not_grow_the_server(self) -> None:
        server = await start_twistd(self)
        tony = await connect(self, server.port)
        tony.send_json(join(*TONY))
        await tony.next_objects(2)
        baseline = server.status("VmHWM")
        abuser = await connect(self, server.port, RawClient)
        abuser.send(b'{"CMD":"SEND","MSG":"' + b"a" * (10 * MB))
        await abuser.closed(timeout=WAIT)
        peak = server.status("VmHWM")
        self.note(baseline, peak)
        self.assertLess(peak - baseline, 4 * MB, f"peak {peak / MB:.1f} MiB")
        # The ERROR went out before the close (whether it arrived before the
        # reset is up to the kernel).
        self.assertIn(codes(abuser.objects), ([], ["FRAME_TOO_LONG"]))
        tony.send_json(send("hi", [TONY[1]], TONY[1]))
        self.assertEqual(codes(await tony.next_objects(1)), ["NO_RECIPIENT"])

    async def test_thousand_connections_opened_and_dropped(self) -> None:
        raise_open_file_limit(self, 1200)
        server = await start_twistd(self, "--max-per-address", "0")
        partial = b'{"CMD":"JOIN","UN":"P'
        joins = [
            [None, partial, json.dumps(join(f"n{i}", f"u{i}")).encode()][i % 3]
            for i in range(1000)
        ]
        for start in range(0, 1000, 250):
            clients = await open_clients(self, server.port, joins[start : start + 250])
            await deferLater(reactor, 0.05, lambda: None)
            for i, client in enumerate(clients):
                if i % 2:
                    client.transport.abortConnection()  # a reset
                else:
                    client.transport.loseConnection()
            await defer.gatherResults([c.closed for c in clients])
        tony = await connect(self, server.port)
        tony.send_json(join(*TONY))
        self.assertEqual(await tony.next_object(), OKAY)
        # Nobody of the thousand is left in the room: the roster Tony sees
        # comes down to him alone (those the server has not yet seen go
        # leave after his join).
        while (await tony.next_object(timeout=WAIT)) != roster(TONY):
            pass
        self.assertNotIn("Traceback", server.process.output)
