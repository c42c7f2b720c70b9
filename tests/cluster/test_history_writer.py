"""The cluster's history writer on a real PostgreSQL and a real Redis, in
this process: a batch is stored with the ids Redis hands out, then put on
the stream; a batch Redis never got is not kept; one whose append got no
answer is kept until the stream tells; a database that fails is told once
and named in ``problem`` until it answers again."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from muca.cluster import scripts
from muca.cluster.address import RedisAddress
from muca.cluster.entries import Publication
from muca.cluster.history import HistoryWriter, UnsureOutcome
from muca.cluster.redisbus import RedisBus
from muca.cluster.redisclient import connect, encode
from muca.protocol.messages import ALL, PRIVATE, ChatMessage
from muca.server.bus import ClusterUnavailable
from muca.store.postgres import PostgresStore
from tests.cluster.test_redisclient import until_connected
from tests.support import postgres as pgsupport
from tests.support.redis import start_redis

DRAFTS = [
    ChatMessage(0, 1_800_000_000_001, "alice", ALL, (), "hello", "Alice"),
    ChatMessage(0, 1_800_000_000_002, "alice", PRIVATE, ("bob",), "psst", "Alice"),
]


async def until(condition: Any, timeout: float = 15.0) -> None:
    """Wait (bounded) until ``condition()`` holds (it may return a Deferred)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("not in time")


class HistoryWriterTests(TestCase):
    async def setUp(self) -> None:
        self.redis = start_redis(self)
        self.bus = RedisBus(RedisAddress("127.0.0.1", self.redis.port, 0), reactor)
        self.bus._commands = self.link()
        await until_connected(self.bus._commands)
        self.database = pgsupport.fresh_database(self)
        # The store creates the tables, as a node's --db does.
        store = PostgresStore(self.database)
        await store.open()
        await store.close()
        #: What happens just before the batch goes to the stream.
        self.before_publish: Any = None

    def link(self) -> Any:
        link = connect(reactor, "127.0.0.1", self.redis.port, 0, 1.0)
        self.addCleanup(link.disconnect)
        return link

    def writer(self, database: str | None = None) -> HistoryWriter:
        writer = HistoryWriter(reactor, database or self.database, self.run_script)
        writer.start()
        self.addCleanup(writer.close)
        return writer

    def run_script(self, script: str, *args: str) -> Any:
        """The bus's script runner, after ``before_publish`` for PUBLISH."""
        if script == scripts.PUBLISH and self.before_publish is not None:
            before, self.before_publish = self.before_publish, None
            return before().addCallback(lambda _: self.bus._run(script, *args))
        return self.bus._run(script, *args)

    async def stored(self) -> list[Any]:
        """Every message the shared database holds, as a replay gives them."""
        store = PostgresStore(self.database)
        await store.open()
        try:
            return list((await store.latest("bob", True, 100)).messages)
        finally:
            await store.close()

    async def stream(self) -> list[dict[str, str]]:
        """The stream's entries' fields."""
        redis = await until_connected(self.bus._commands)
        entries = await redis.command(encode("XRANGE", scripts.KEYS[2], "-", "+"))
        return [dict(zip(f[::2], f[1::2], strict=True)) for _, f in entries]

    async def test_batches_are_stored_with_the_ids_redis_gives_then_streamed(
        self,
    ) -> None:
        writer = self.writer()
        self.assertEqual(
            await writer.append(
                DRAFTS, Publication(len(DRAFTS), "[data]", "0", "n1:1")
            ),
            1,
        )
        self.assertEqual(writer.appended("n1:1"), 1)
        # Asked once: forgotten.
        self.assertIsNone(writer.appended("n1:1"))
        self.assertEqual(
            await writer.append(
                DRAFTS[:1], Publication(len(DRAFTS[:1]), "[one]", "0", "n1:2")
            ),
            3,
        )
        stored = await self.stored()
        self.assertEqual(
            [(m.id, m.text, m.nickname) for m in stored][:3],
            [
                (1, "hello", "Alice"),
                (2, "psst", "Alice"),
                (3, "hello", "Alice"),
            ],
        )
        self.assertEqual(stored[1].recipients, ("bob",))
        self.assertEqual(stored[1].ts, 1_800_000_000_002)
        self.assertEqual(
            await self.stream(),
            [
                {"t": "m", "f": "1", "n": "2", "k": "n1:1", "u": "0", "d": "[data]"},
                {"t": "m", "f": "3", "n": "1", "k": "n1:2", "u": "0", "d": "[one]"},
            ],
        )
        self.assertIsNone(writer.problem)

    async def test_a_batch_redis_never_got_is_not_kept(self) -> None:
        writer = self.writer()
        link = self.bus._commands

        async def cut() -> None:
            await link.disconnect()

        self.before_publish = lambda: Deferred.fromCoroutine(cut())
        with self.assertRaises(ClusterUnavailable):
            await writer.append(DRAFTS, Publication(len(DRAFTS), "[data]", "0", "n1:1"))
        self.assertEqual(await self.stored(), [])
        self.assertIsNone(writer.appended("n1:1"))
        # The lock was given back: the next batch goes, with the same ids.
        self.bus._commands = self.link()
        await until_connected(self.bus._commands)
        self.assertEqual(
            await writer.append(
                DRAFTS, Publication(len(DRAFTS), "[data]", "0", "n1:2")
            ),
            1,
        )
        self.assertEqual([m.id for m in await self.stored()], [1, 2])

    async def unsure(self, writer: HistoryWriter, token: str) -> None:
        """Append a batch whose PUBLISH gets no answer (Redis stalled)."""

        def stall() -> Any:
            self.redis.pause()
            return deferLater(reactor, 0, lambda: None)

        self.before_publish = stall
        try:
            with self.assertRaises(UnsureOutcome) as failed:
                await writer.append(
                    DRAFTS, Publication(len(DRAFTS), "[data]", "0", token)
                )
        finally:
            self.redis.resume()
        self.assertEqual(
            str(failed.exception), "Not received Redis response in 1.0 seconds"
        )

    async def test_a_batch_with_no_answer_stays_until_the_stream_tells(
        self,
    ) -> None:
        writer = self.writer()
        await self.unsure(writer, "n1:1")
        # Kept until the stream tells; found there (accepted): kept for good.
        self.assertEqual([m.id for m in await self.stored()], [1, 2])
        writer.accepted("n1:1")
        writer.not_accepted("n1:1")
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual([m.id for m in await self.stored()], [1, 2])
        # A second one that the stream shows was not accepted: deleted.
        await self.unsure(writer, "n1:2")
        self.assertEqual([m.id for m in await self.stored()], [1, 2, 3, 4])
        writer.not_accepted("n1:2")

        async def only_the_first() -> bool:
            return [m.id for m in await self.stored()] == [1, 2]

        await until(only_the_first)

    async def test_a_database_that_fails_is_named_until_it_answers(self) -> None:
        server = pgsupport.private_server(self)
        database = server.conninfo()
        store = PostgresStore(database)
        await store.open()
        await store.close()
        writer = self.writer(database)
        pgsupport.stop(server)
        with capturedLogs() as events:
            writer.probe()
            writer.probe()  # one probe at a time

            async def failing() -> bool:
                return writer.problem is not None

            await until(failing)
            with self.assertRaises(psycopg.OperationalError):
                await writer.append(
                    DRAFTS, Publication(len(DRAFTS), "[data]", "0", "n1:1")
                )
        # libpq's message, on one line.
        self.assertTrue(writer.problem.startswith("PostgreSQL: "), writer.problem)
        self.assertIn(
            f"port {server.port} failed: Connection refused Is the server running",
            writer.problem,
        )
        lines = [formatEvent(e) for e in events if "history" in formatEvent(e)]
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(
            lines[0], f"cluster: the history database fails: {writer.problem[12:]}"
        )
        pgsupport.start(server)
        with capturedLogs() as events:

            async def answering() -> bool:
                writer.probe()
                return writer.problem is None

            await until(answering, 30.0)
        self.assertEqual(
            [formatEvent(e) for e in events if "history" in formatEvent(e)],
            ["cluster: the history database answers again"],
        )
        self.assertEqual(
            await writer.append(
                DRAFTS, Publication(len(DRAFTS), "[data]", "0", "n1:2")
            ),
            1,
        )
