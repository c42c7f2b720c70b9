"""History limits of a running server: the history is pruned by default (a
year, 1 GiB) and to ``--history-bytes``, oldest first, and a client looping
``HISTORY`` requests is paced by the size of the answers while another
client chats on, unaffected; real servers over loopback (the pacing's
times on a fake clock)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import TestCase

from muca.protocol.messages import ChatMessage
from muca.server.limits import answer_tokens
from muca.service import tap
from muca.store.sqlite import SQLiteStore
from tests.support import (
    TIMEOUT,
    MemoryPeer,
    MemoryServer,
    connect,
    join,
    send,
    start_server,
)
from tests.support.twistd import fresh_directory

README = Path(__file__).resolve().parents[2] / "README.md"
DAY_MS = 86_400_000
#: The reader of these tests scrolls back through megabytes at once.
UNPACED = ("--rate-limit", "0")


async def filled_database(testcase: TestCase, messages: list[ChatMessage]) -> str:
    """An SQLite history file holding ``messages``, closed."""
    path = os.path.join(fresh_directory(testcase), "history.db")
    store = SQLiteStore(path)
    await store.open()
    await store.append(messages)
    await store.close()
    return path


def broadcasts(count: int, size: int, ts: int, first: int = 1) -> list[ChatMessage]:
    """``count`` broadcasts of ``size`` characters that do not compress."""
    return [
        ChatMessage(i, ts, "alice@hku.hk", "ALL", (), os.urandom(size // 2).hex())
        for i in range(first, first + count)
    ]


def pruned_log(testcase: TestCase) -> defer.Deferred[str]:
    """Fires with the server's first log line about pruned messages."""
    found: defer.Deferred[str] = defer.Deferred()

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_format", "").startswith("muca: pruned") and not found.called:
            found.callback(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    testcase.addCleanup(globalLogPublisher.removeObserver, observe)
    return found.addTimeout(30, reactor)


async def stored_ids(port: int, testcase: TestCase) -> list[int]:
    """Every message id a newcomer can read back, by scrolling back."""
    client = await connect(testcase, port)
    client.send_json(join("Reader", "reader@hku.hk", CAPS=["history"], V=2))
    ids: list[int] = []
    before = None
    for _ in range(100):
        if before is not None:
            client.send_json({"CMD": "HISTORY", "BEFORE": before, "LIMIT": 200})
        page: list[int] = []
        for _ in range(300):
            obj = await client.next_object()
            if obj.get("CMD") == "MSG":
                page.append(obj["ID"])
            elif obj.get("CMD") == "HISTORY":
                break
        ids = page + ids
        if not obj["MORE"]:
            await client.close()
            return ids
        before = ids[0]
    testcase.fail("the history did not end")


class RetentionTests(TestCase):
    """What a server keeps of the history file it starts on."""

    def test_the_defaults_are_what_the_readme_says(self) -> None:
        options = tap.Options()
        options.parseOptions(["--db", "none"])
        self.assertEqual(options["history-days"], 365)
        self.assertEqual(options["history-bytes"], 1024**3)
        readme = README.read_text(encoding="utf-8")
        self.assertRegex(readme, r"(?m)^\| `--history-days D` \| 365 \|")
        self.assertRegex(
            readme, r"(?m)^\| `--history-bytes SIZE` \| 1073741824 \(1 GiB\) \|"
        )
        for value, expected in (("none", 0), ("0", 0), ("500M", 500 << 20)):
            options = tap.Options()
            options.parseOptions(["--db", "none", "--history-bytes", value])
            self.assertEqual(options["history-bytes"], expected)
        options = tap.Options()
        options.parseOptions(["--db", "none", "--history-days", "none"])
        self.assertEqual(options["history-days"], 0)

    def test_a_bad_size_is_one_line_naming_the_option(self) -> None:
        for bad in ("lots", "-5", "1.5G", "G"):
            with self.assertRaises(usage.UsageError) as caught:
                tap.Options().parseOptions(["--history-bytes", bad])
            self.assertRegex(str(caught.exception), r"^--history-bytes: .* size")

    async def test_by_default_messages_older_than_a_year_go(self) -> None:
        now_ms = int(time.time() * 1000)
        old = broadcasts(5, 20, now_ms - 400 * DAY_MS)
        recent = broadcasts(5, 20, now_ms - 300 * DAY_MS, first=6)
        path = await filled_database(self, old + recent)
        pruned = pruned_log(self)
        port = await start_server(self, "--db", path, *UNPACED)
        self.assertIn("pruned 5 old messages", await pruned)
        self.assertEqual(await stored_ids(port, self), list(range(6, 11)))

    async def test_a_database_over_history_bytes_loses_its_oldest(self) -> None:
        now_ms = int(time.time() * 1000)
        path = await filled_database(self, broadcasts(600, 2000, now_ms))
        self.assertGreater(os.path.getsize(path), 1_200_000)
        # What one message takes in the file, its search index included.
        each = os.path.getsize(path) / 600
        pruned = pruned_log(self)
        port = await start_server(
            self, "--db", path, "--history-bytes", "400K", *UNPACED
        )
        count = int(re.search(r"pruned (\d+)", await pruned).group(1))
        kept = await stored_ids(port, self)
        # The newest, and about as many as fit in 400 KiB (never more than
        # 200: their texts alone are 2 KB each).
        self.assertEqual(kept, list(range(count + 1, 601)))
        fit = 400 * 1024 / each
        self.assertTrue(0.5 * fit <= len(kept) <= min(200, 1.5 * fit), (len(kept), fit))

    async def test_history_bytes_none_keeps_everything(self) -> None:
        now_ms = int(time.time() * 1000)
        path = await filled_database(self, broadcasts(600, 2000, now_ms))
        port = await start_server(
            self, "--db", path, "--history-bytes", "none", *UNPACED
        )
        self.assertEqual(await stored_ids(port, self), list(range(1, 601)))


class PacedHistoryTests(TestCase):
    """``HISTORY`` answers cost rate-limit tokens by their size."""

    async def test_a_client_looping_history_is_paced_and_others_chat_on(self) -> None:
        now_ms = int(time.time() * 1000)
        # 200 messages of 1,000 characters: an answer of about 220 KB, 215
        # tokens, 4.3 s of the rate of 50 frames a second.
        path = await filled_database(self, broadcasts(200, 1000, now_ms))
        port = await start_server(
            self, "--db", path, "--rate-limit", "50", "--rate-burst", "5"
        )
        greedy = await connect(self, port)
        greedy.send_json(join("Greedy", "greedy@hku.hk", V=2))
        carol = await connect(self, port)
        carol.send_json(join("Carol", "carol@hku.hk", V=2))
        dave = await connect(self, port)
        dave.send_json(join("Dave", "dave@hku.hk", V=2))
        for client in (greedy, carol, dave):
            while (await client.next_object()).get("CMD") != "ACK":
                pass
        ask = {"CMD": "HISTORY", "BEFORE": 10**12, "LIMIT": 200}

        async def answer() -> float:
            """Greedy's next answer: when it ended."""
            while (await greedy.next_object(timeout=15)).get("CMD") != "HISTORY":
                pass
            return time.monotonic()

        greedy.send_json(ask)
        first = await answer()
        greedy.send_json(ask)
        second = defer.ensureDeferred(answer())
        # While Greedy's next answer waits, Carol chats with Dave as usual:
        # ten lines, each read by Dave before the next is sent.
        for n in range(10):
            carol.send_json(send(f"line {n}", ["dave@hku.hk"], "carol@hku.hk"))
            while True:
                obj = await dave.next_object()
                if obj.get("CMD") == "MSG":
                    break
            self.assertEqual(obj["MSG"], f"line {n}")
        self.assertFalse(second.called, "Greedy's next answer did not wait")
        # Paid for by their size, the next answer comes about 4.3 s after
        # the first (at the rate without the charge, 50 answers a second):
        # delayed, not dropped. A loaded machine only makes it later (the
        # wait itself, on a fake clock: PacedHistoryClockTests).
        self.assertGreater(await second - first, 3.0)


class PacedHistoryClockTests(TestCase):
    """The same on a fake clock: how long the next frame waits is the
    answer's size in tokens, and the others' messages do not wait at all."""

    async def test_the_frame_after_an_answer_waits_for_its_size_in_tokens(
        self,
    ) -> None:
        now_ms = int(time.time() * 1000)
        path = await filled_database(self, broadcasts(200, 1000, now_ms))
        store = SQLiteStore(path)
        await store.open()
        self.addCleanup(store.close)
        server = MemoryServer(store=store, rate=50, burst=5)
        self.addCleanup(server.stop)
        greedy, carol, dave = (server.connect() for _ in ("greedy", "carol", "dave"))
        for peer, name in ((greedy, "Greedy"), (carol, "Carol"), (dave, "Dave")):
            peer.send_json(join(name, f"{name.lower()}@hku.hk", V=2))
        for peer in (greedy, carol, dave):
            peer.take()
        ask = {"CMD": "HISTORY", "BEFORE": 10**12, "LIMIT": 200}
        greedy.send_json(ask)
        size = len(await history_answer(greedy))
        self.assertGreater(size, 200_000)
        # What the answer cost, at 50 tokens a second (the burst is spent).
        wait = answer_tokens(size) / 50
        greedy.send_json(ask)
        server.clock.advance(wait - 0.5)
        self.assertEqual(greedy.transport.producerState, "paused")  # still waits
        # Meanwhile Carol chats with Dave as usual: no time passes on the
        # clock before he has her line (the store writes it on its thread).
        carol.send_json(send("still here?", ["dave@hku.hk"], "carol@hku.hk"))
        line = await next_message(dave)
        self.assertEqual(line["MSG"], "still here?")
        server.clock.advance(1.0)
        self.assertGreater(len(await history_answer(greedy)), 200_000)


async def history_answer(peer: MemoryPeer) -> bytes:
    """The bytes ``peer`` gets up to a ``HISTORY`` marker: the store reads
    on threads of its own, so the reactor runs meanwhile (bounded)."""
    got = b""
    deadline = time.monotonic() + TIMEOUT
    while b'"CMD":"HISTORY"' not in got.replace(b" ", b""):
        if time.monotonic() > deadline:
            raise AssertionError(f"no HISTORY marker: {got[-200:]!r}")
        await deferLater(reactor, 0.01)
        got += peer.take_bytes()
    return got


async def next_message(peer: MemoryPeer) -> dict[str, Any]:
    """The next ``MSG`` ``peer`` gets, while the reactor runs (bounded)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        await deferLater(reactor, 0.01)
        for obj in peer.take():
            if obj["CMD"] == "MSG":
                return obj
    raise AssertionError("no MSG came")
