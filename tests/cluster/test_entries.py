"""The stream's entries: what the Lua scripts append on a real redis-server
is what ``muca.cluster.entries`` decodes, field by field, and the batches
Python hands the publishing script come back as they went."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.cluster import scripts
from muca.cluster.entries import (
    Batch,
    Entry,
    Joined,
    Left,
    decode,
    encode,
    publication,
)
from muca.cluster.redisbus import STREAM_MAXLEN
from muca.cluster.redisclient import ScriptCall, connect
from muca.cluster.redisclient import encode as command
from muca.protocol.messages import ALL, GROUP, PRIVATE, ChatMessage
from tests.cluster.test_redisclient import until_connected
from tests.support.redis import start_redis

NODE = "node-a"
EVENTS = scripts.KEYS[2]
# Not ASCII, and a slash (Lua's cjson writes it escaped).
MARY = ("Mary/Ωmega", "mary@hku.hk")
TONY = ("Tony", "tony@hku.hk")
TS = 1_700_000_000_123


class ScriptEntriesTests(TestCase):
    """Each script's entries, read back from the stream."""

    async def start(self) -> None:
        """A private Redis on which node ``NODE`` is alive."""
        redis = start_redis(self)
        factory = connect(reactor, "127.0.0.1", redis.port, 0, 2.0)
        self.addCleanup(factory.disconnect)
        self.redis = await until_connected(factory)
        self.position = "0-0"
        await self.script(scripts.HEARTBEAT, NODE, "e1", "5000", "2000", "3000", "")

    async def script(self, script: str, *args: str) -> Any:
        """Run one of the cluster's scripts, as the bus does."""
        call = ScriptCall(script, scripts.KEYS, [str(STREAM_MAXLEN)])
        return await self.redis.command(call.whole(args))

    async def appended(self) -> list[tuple[dict[str, str], Entry | None]]:
        """The entries appended since last asked: their fields as Redis
        holds them, and decoded."""
        read = await self.redis.command(
            command("XRANGE", EVENTS, "(" + self.position, "+")
        )
        entries = []
        for entry_id, flat in read:
            self.position = entry_id
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            entries.append((fields, decode(fields)))
        return entries

    def assertSameFields(self, fields: dict[str, str], entry: Entry) -> None:
        """Python writes the same field names, in the same order, and its
        encoding decodes to the same entry."""
        self.assertEqual(list(encode(entry)), list(fields))
        self.assertEqual(decode(encode(entry)), entry)

    async def join(self, nickname: str, uid: str) -> int:
        """Join ``uid`` on ``NODE``; its join sequence number."""
        verdict, seq = await self.script(
            scripts.JOIN, uid, nickname, NODE, "0", nickname.lower(), "0"
        )
        self.assertEqual(verdict, "OK")
        return int(seq)

    async def test_a_join_and_a_leave(self) -> None:
        await self.start()
        seq = await self.join(*MARY)
        [(fields, joined)] = await self.appended()
        self.assertEqual(joined, Joined(MARY[1], MARY[0], NODE, seq))
        self.assertSameFields(fields, joined)
        self.assertEqual(await self.script(scripts.LEAVE, MARY[1], NODE), 1)
        [(fields, left)] = await self.appended()
        self.assertEqual(left, Left(MARY[1], NODE))
        self.assertSameFields(fields, left)

    async def test_registering_again_and_a_dead_node(self) -> None:
        await self.start()
        await self.join(*TONY)
        await self.appended()
        # SYNC: Tony is no longer this node's, Mary is.
        await self.script(scripts.SYNC, NODE, "[]", MARY[1], MARY[0], "mary", '[""]')
        [(_, joined), (_, left)] = await self.appended()
        assert isinstance(joined, Joined), joined
        self.assertEqual((joined.nickname, joined.uid, joined.node), (*MARY, NODE))
        self.assertEqual(left, Left(TONY[1], NODE))
        # Another node's heartbeat, once NODE has been silent past the TTL
        # (0 ms here): NODE's members leave.
        await self.script(scripts.HEARTBEAT, "node-b", "e1", "0", "60000", "3000", "e1")
        [(fields, gone)] = await self.appended()
        self.assertEqual(gone, Left(MARY[1], NODE))
        self.assertSameFields(fields, gone)

    async def test_a_batch_published_comes_back_as_it_went(self) -> None:
        await self.start()
        drafts = [
            ChatMessage(0, TS, MARY[1], PRIVATE, (TONY[1],), "hi / ☃"),
            ChatMessage(0, TS + 1, TONY[1], GROUP, (MARY[1], TONY[1]), "group"),
        ]
        batch = publication(drafts, f"{NODE}:7")
        first = await self.script(scripts.PUBLISH, *batch.arguments(40, None))
        self.assertEqual(first, 41)
        [(fields, read)] = await self.appended()
        self.assertEqual(
            read, Batch(41, f"{NODE}:7", batch.data, len(drafts), batch.to)
        )
        self.assertEqual(encode(read), fields)
        assert isinstance(read, Batch)
        self.assertEqual(sorted(read.recipients() or []), [MARY[1], TONY[1]])
        messages = read.messages(read.rows(), 0, lambda to: True)
        self.assertEqual(
            messages,
            [
                ChatMessage(41, TS, MARY[1], PRIVATE, (TONY[1],), "hi / ☃"),
                ChatMessage(42, TS + 1, TONY[1], GROUP, (MARY[1], TONY[1]), "group"),
            ],
        )

    async def test_a_batch_with_a_broadcast_is_for_everyone(self) -> None:
        await self.start()
        drafts = [
            ChatMessage(0, TS, MARY[1], PRIVATE, (TONY[1],), "hi"),
            ChatMessage(0, TS, MARY[1], ALL, (), "hello"),
        ]
        batch = publication(drafts, "t")
        # With an expected first id: the history's way of publishing.
        await self.script(scripts.PUBLISH, *batch.arguments(0, 1))
        [(fields, read)] = await self.appended()
        self.assertEqual(encode(read), fields)
        assert isinstance(read, Batch)
        self.assertEqual((read.first, read.count), (1, 2))
        self.assertIsNone(read.recipients())
        # Only the broadcast when no recipient is wanted here.
        self.assertEqual(
            [m.text for m in read.messages(read.rows(), 0, lambda to: False)],
            ["hello"],
        )
