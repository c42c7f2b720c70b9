"""Who is away, and who sent what, across a cluster: ``KNOWN`` is the same
list whichever node a client joins (a node started later included), and a
replayed ``MSG`` carries its sender's nickname (``UN``) from the shared
PostgreSQL history; real nodes, a real Redis and PostgreSQL."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from tests.cluster.support import WAIT, next_of, start_node
from tests.support import RawClient, connect, join, send
from tests.support import postgres as pgsupport
from tests.support.redis import start_redis
from tests.support.twistd import Twistd

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
CAROL = ("Carol", "carol@hku.hk")
DAVE = ("Dave", "dave@hku.hk")
#: Watch on each node sees every join and leave there (see ``watched``).
WATCHERS = [("Watch1", "watch1@hku.hk"), ("Watch2", "watch2@hku.hk")]
PASSWORDS = {u: u[0] for _, u in (TONY, MARY, CAROL, DAVE, *WATCHERS)}
AUTH = ("--auth", "memory:" + ":".join(f"{u}:{p}" for u, p in PASSWORDS.items()))


def entry(who: tuple[str, str]) -> dict[str, str]:
    return {"UN": who[0], "UID": who[1]}


class KnownAcrossNodesTests(TestCase):
    """Two nodes and a third started later, on one Redis and one database."""

    async def join(
        self, node: Twistd, who: tuple[str, str], *caps: str
    ) -> tuple[RawClient, list[dict[str, Any]]]:
        """Join ``who`` on ``node``; the client and what came up to its
        KNOWN (or its LIST without the capability)."""
        client = await connect(self, node.port)
        client.send_json(join(*who, V=2, PASS=PASSWORDS[who[1]], CAPS=list(caps)))
        got = [await client.next_object(WAIT)]
        self.assertEqual(got[0]["TYPE"], "OKAY", got)
        got.append(await next_of(client, "LIST"))
        if "known" in caps:
            got.append(await client.next_object(WAIT))
        await self.watched(who[1], True)
        return client, got

    async def watch(self, *nodes: Twistd) -> None:
        """A watcher on each of ``nodes``: once every watcher's LIST shows a
        join or leave, every node has taken it (and recorded its time)."""
        self.watchers: list[RawClient] = []
        self.rosters: list[list[dict[str, str]]] = []
        for node, who in zip(nodes, WATCHERS, strict=True):
            watcher = await connect(self, node.port)
            watcher.send_json(join(*who, PASS=PASSWORDS[who[1]]))
            self.assertEqual((await watcher.next_object(WAIT))["TYPE"], "OKAY")
            self.watchers.append(watcher)
            self.rosters.append([])
        for _, uid in WATCHERS:
            await self.watched(uid, True)

    async def watched(self, uid: str, present: bool) -> None:
        """Wait until every watcher's last LIST shows ``uid`` ``present``
        or not."""
        for n, watcher in enumerate(self.watchers):
            for _ in range(500):
                if any(e["UID"] == uid for e in self.rosters[n]) == present:
                    break
                obj = await watcher.next_object(WAIT)
                if obj.get("CMD") == "LIST":
                    self.rosters[n] = obj["DATA"]
            else:
                self.fail(f"a watcher never saw {uid} {present}")

    async def away(self, client: RawClient, who: tuple[str, str]) -> None:
        """Close ``who``'s connection; back once every node took its leave."""
        await client.close()
        await self.watched(who[1], False)

    async def test_the_same_known_list_from_every_node(self) -> None:
        redis = start_redis(self)
        database = pgsupport.fresh_database(self)
        one = await start_node(self, redis, "--db", database, *AUTH)
        two = await start_node(self, redis, "--db", database, *AUTH)
        await self.watch(one, two)
        carol, _ = await self.join(one, CAROL)
        carol.send_json(send("from Carol", [], CAROL[1]))
        mary, _ = await self.join(two, MARY, "history")
        self.assertEqual((await next_of(mary, "MSG"))["MSG"], "from Carol")
        await self.away(carol, CAROL)
        await self.away(mary, MARY)
        tony, got = await self.join(one, TONY, "known", "history")
        expected = {"CMD": "KNOWN", "DATA": [entry(MARY), entry(CAROL)]}
        self.assertEqual(got[2], expected)
        replayed = await next_of(tony, "MSG")
        self.assertEqual(
            (replayed["MSG"], replayed["UN"], replayed["HIST"]),
            ("from Carol", "Carol", True),
        )
        # Tony is here: on the other node, Dave gets the same list.
        dave, got = await self.join(two, DAVE, "known")
        self.assertEqual(got[2], expected)
        await self.away(dave, DAVE)
        # A node started now reads the known users from the database.
        three = await start_node(self, redis, "--db", database, *AUTH)
        _, got = await self.join(three, DAVE, "known")
        self.assertEqual(got[2], expected)
