"""Identity rules in a cluster: the registry's join script on a real
redis-server refuses what a single server's room refuses (a nickname that
is another user's id, joined or known; a user id that is another member's
nickname; a look-alike nickname), decided atomically even when two nodes
race; and real nodes refuse Eve across nodes in every order."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.cluster import scripts
from muca.cluster.redisbus import STREAM_MAXLEN
from muca.cluster.redisclient import ScriptCall, connect, encode
from muca.protocol.confusables import skeleton
from tests.cluster.support import WAIT, join_on, roster_becomes, start_node
from tests.cluster.test_history import AUTH, PASSWORDS, history_on
from tests.cluster.test_redisclient import until_connected
from tests.support import connect as connect_client
from tests.support import join
from tests.support import postgres as pgsupport
from tests.support.redis import start_redis

NODES = scripts.KEYS[5]


class JoinScriptTests(TestCase):
    """The JOIN and LEAVE scripts on a registry of node "n1"."""

    async def setUp(self) -> None:
        redis = start_redis(self)
        factory = connect(reactor, "127.0.0.1", redis.port, 0, 2.0)
        self.addCleanup(factory.disconnect)
        self.redis = await until_connected(factory)
        await self.redis.command(encode("ZADD", NODES, "1", "n1"))

    async def script(self, script: str, *args: str) -> Any:
        call = ScriptCall(script, scripts.KEYS, [str(STREAM_MAXLEN)])
        await self.redis.command(encode("SCRIPT", "LOAD", script))
        return await self.redis.command(call.by_sha(args))

    async def join(self, uid: str, nickname: str, known: bool = False) -> list[Any]:
        return await self.script(
            scripts.JOIN, uid, nickname, "n1", "0", skeleton(nickname),
            "1" if known else "0",
        )  # fmt: skip

    async def test_a_nickname_is_no_other_members_user_id(self) -> None:
        self.assertEqual((await self.join("carol", "Carol"))[0], "OK")
        self.assertEqual(await self.join("eve", "carol"), ["NICK_IS_UID"])
        # One's own id as one's nickname is fine.
        self.assertEqual((await self.join("dave", "dave"))[0], "OK")

    async def test_a_user_id_is_no_other_members_nickname(self) -> None:
        self.assertEqual((await self.join("eve", "carol"))[0], "OK")
        self.assertEqual(await self.join("carol", "Carol"), ["UID_IS_NICK"])
        await self.script(scripts.LEAVE, "eve", "n1")
        self.assertEqual((await self.join("carol", "Carol"))[0], "OK")

    async def test_a_known_id_stays_its_users_after_it_left(self) -> None:
        self.assertEqual((await self.join("carol", "Carol", known=True))[0], "OK")
        self.assertEqual(await self.script(scripts.LEAVE, "carol", "n1"), 1)
        self.assertEqual(await self.join("eve", "carol"), ["NICK_IS_UID"])
        # Without --auth nobody becomes known.
        self.assertEqual((await self.join("bob", "Bob"))[0], "OK")
        await self.script(scripts.LEAVE, "bob", "n1")
        self.assertEqual((await self.join("eve", "bob"))[0], "OK")

    async def test_a_look_alike_nickname_is_taken_until_its_holder_leaves(
        self,
    ) -> None:
        self.assertEqual((await self.join("mary", "Mary"))[0], "OK")
        self.assertEqual(await self.join("eve", "M\u0430ry"), ["NICK_LOOKS", "Mary"])
        await self.script(scripts.LEAVE, "mary", "n1")
        self.assertEqual((await self.join("eve", "M\u0430ry"))[0], "OK")


class NodesTests(TestCase):
    """Carol and Eve on two real nodes."""

    async def refused(self, port: int, nickname: str, uid: str, **extra: Any) -> Any:
        client = await connect_client(self, port)
        client.send_json(join(nickname, uid, **extra))
        ack = await client.next_object(WAIT)
        return ack["TYPE"], ack.get("CODE")

    async def test_every_order_across_two_nodes(self) -> None:
        redis = start_redis(self)
        one = await start_node(self, redis)
        two = await start_node(self, redis)
        watcher = await join_on(self, one, "Watcher", "watcher")
        # Carol first (on one), then Eve (on two) with her id as nickname.
        carol = await join_on(self, one, "Carol", "carol")
        await roster_becomes(watcher, [("Watcher", "watcher"), ("Carol", "carol")])
        self.assertEqual(
            await self.refused(two.port, "carol", "eve"), ("FAIL", "NICK_TAKEN")
        )
        await carol.close()
        await roster_becomes(watcher, [("Watcher", "watcher")])
        # Eve first (on two), then Carol (on one).
        await join_on(self, two, "carol", "eve")
        await roster_becomes(watcher, [("Watcher", "watcher"), ("carol", "eve")])
        self.assertEqual(
            await self.refused(one.port, "Carol", "carol"), ("FAIL", "UID_TAKEN")
        )
        # A look-alike of the watcher's nickname, from the other node.
        lookalike = await self.refused(two.port, "W\u0430tcher", "w2")
        self.assertEqual(lookalike, ("FAIL", "NICK_TAKEN"))

    async def test_a_known_user_away_keeps_her_id_on_every_node(self) -> None:
        redis = start_redis(self)
        database = pgsupport.fresh_database(self)
        one = await start_node(self, redis, "--db", database, *AUTH)
        # Carol has been here once, on node one.
        carol, _ = await history_on(self, one.port, ("Carol", "carol@hku.hk"))
        await carol.close()
        # A node started later knows her from the database, another from
        # the registry: Eve takes her id as nickname on neither.
        two = await start_node(self, redis, "--db", database, *AUTH)
        for node in (one, two):
            self.assertEqual(
                await self.refused(
                    node.port, "carol@hku.hk", "tony@hku.hk",
                    PASS=PASSWORDS["tony@hku.hk"],
                ),
                ("FAIL", "NICK_TAKEN"),
            )  # fmt: skip
