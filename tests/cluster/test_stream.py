"""Following the cluster's stream on a real redis-server: entries come in
the stream's order, each once, from the position a node reads after; a bad
entry is logged and passed over; a failed read is logged and retried."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.cluster import scripts
from muca.cluster.entries import BROADCAST, Batch, Entry, Joined, Left, encode
from muca.cluster.redisclient import connect
from muca.cluster.redisclient import encode as encode_command
from muca.cluster.stream import READ_BLOCK_MS, StreamReader, stream_id
from tests.cluster.test_redisclient import until_connected
from tests.support.redis import start_redis

STREAM = scripts.KEYS[2]


def batch(first: int) -> Batch:
    """A batch of one broadcast with id ``first``."""
    return Batch(
        first, f"token{first}", f'[[0,"tony","ALL",[],"m{first}"]]', 1, BROADCAST
    )


JOINED = Joined("mary@hku.hk", "Mary", "node-2", 7)
LEFT = Left("mary@hku.hk", "node-2")


class Follower:
    """A StreamReader on a connection of its own, and what it applied."""

    def __init__(self, testcase: TestCase, port: int) -> None:
        self.applied: list[Entry] = []
        self.reads = 0
        self.link = connect(reactor, "127.0.0.1", port, 0, READ_BLOCK_MS / 1000 + 1)
        testcase.addCleanup(self.link.disconnect)
        self.reader = StreamReader(reactor, self.apply, self.caught_up)
        testcase.addCleanup(self.reader.stop)

    def apply(self, entry: Entry) -> None:
        self.applied.append(entry)

    def caught_up(self) -> None:
        self.reads += 1


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("not in time")


class StreamReaderTests(TestCase):
    def setUp(self) -> None:
        self.redis = start_redis(self)
        self.commands = connect(reactor, "127.0.0.1", self.redis.port, 0, 5.0)
        self.addCleanup(self.commands.disconnect)

    async def add(self, entry: Entry | dict[str, str]) -> str:
        """XADD an entry (or raw fields) to the stream; the entry's id."""
        fields = entry if isinstance(entry, dict) else encode(entry)
        flat = [part for pair in fields.items() for part in pair]
        redis = await until_connected(self.commands)
        return await redis.command(encode_command("XADD", STREAM, "*", *flat))

    async def test_entries_in_order_once_following(self) -> None:
        first = await self.add(batch(1))
        follower = Follower(self, self.redis.port)
        follower.reader.start(follower.link)
        # Not following yet (the registry is not loaded): nothing is read.
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual((follower.applied, follower.reads), ([], 0))
        follower.reader.following = True
        await until(lambda: len(follower.applied) == 1)
        self.assertEqual(follower.applied, [batch(1)])
        self.assertEqual(follower.reader.position, first)
        self.assertEqual(follower.reads, 1)
        # Entries added while it waits in a blocking read.
        await self.add(JOINED)
        last = await self.add(LEFT)
        await until(lambda: len(follower.applied) == 3)
        self.assertEqual(
            follower.applied,
            [batch(1), JOINED, LEFT],
        )
        self.assertEqual(follower.reader.position, last)
        # An empty read (the block ran out) applies nothing and is no catch-up.
        reads = follower.reads
        await deferLater(reactor, READ_BLOCK_MS / 1000 + 0.5, lambda: None)
        self.assertEqual((len(follower.applied), follower.reads), (3, reads))

    async def test_read_from_a_position(self) -> None:
        await self.add(batch(1))
        second = await self.add(batch(2))
        await self.add(batch(3))
        follower = Follower(self, self.redis.port)
        follower.reader.read_from(second)
        follower.reader.following = True
        follower.reader.start(follower.link)
        await until(lambda: len(follower.applied) == 1)
        self.assertEqual(follower.applied, [batch(3)])

    async def test_a_read_under_way_when_the_position_is_set_is_dropped(
        self,
    ) -> None:
        first = await self.add(batch(1))
        follower = Follower(self, self.redis.port)
        follower.reader.following = True
        await until_connected(follower.link)
        # The read sent by start asks for what follows 0-0; the node then
        # reads after the first entry: that read's reply is not applied.
        follower.reader.start(follower.link)
        follower.reader.read_from(first)
        await deferLater(reactor, 0.3, lambda: None)
        await self.add(batch(2))
        await until(lambda: len(follower.applied) == 1)
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(follower.applied, [batch(2)])

    async def test_a_bad_entry_is_logged_and_passed_over(self) -> None:
        # A batch without its first id and data, then a good one.
        await self.add({"t": "m"})
        await self.add(batch(2))
        follower = Follower(self, self.redis.port)
        with capturedLogs() as events:
            follower.reader.following = True
            follower.reader.start(follower.link)
            await until(lambda: len(follower.applied) == 1)
        self.assertEqual(follower.applied, [batch(2)])
        self.assertEqual(follower.reads, 1)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        lines = [formatEvent(e) for e in events if "stream" in formatEvent(e)]
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r"^cluster: bad stream entry \d+-0$")

    async def test_a_failed_read_is_logged_and_read_again(self) -> None:
        follower = Follower(self, self.redis.port)
        follower.reader.following = True
        with capturedLogs() as events:
            follower.reader.start(follower.link)
            await until_connected(follower.link)
            self.redis.pause()
            try:
                await until(
                    lambda: any("reading the stream" in formatEvent(e) for e in events)
                )
            finally:
                self.redis.resume()
            await self.add(batch(1))
            await until(lambda: follower.applied == [batch(1)])
        line = next(formatEvent(e) for e in events if "reading" in formatEvent(e))
        self.assertEqual(
            line,
            "cluster: reading the stream: Not received Redis response in 2.0 seconds",
        )

    async def test_stopped_it_reads_no_more(self) -> None:
        follower = Follower(self, self.redis.port)
        follower.reader.following = True
        follower.reader.start(follower.link)
        await self.add(batch(1))
        await until(lambda: len(follower.applied) == 1)
        follower.reader.stop()
        # The read under way may still come back: wait it out.
        await deferLater(reactor, READ_BLOCK_MS / 1000 + 0.5, lambda: None)
        await self.add(batch(2))
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual(follower.applied, [batch(1)])


class StreamIdTests(SynchronousTestCase):
    def test_ids_compare_as_numbers(self) -> None:
        self.assertEqual(stream_id("1733580000000-7"), (1733580000000, 7))
        self.assertEqual(stream_id("5"), (5, 0))
        self.assertLess(stream_id("9-1"), stream_id("10-0"))
        self.assertLess(stream_id("10-2"), stream_id("10-10"))
