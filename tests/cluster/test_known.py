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
PASSWORDS = {u: u[0] for _, u in (TONY, MARY, CAROL, DAVE)}
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
        return client, got

    async def away(self, node: Twistd, client: RawClient, who: tuple[str, str]) -> None:
        """Close ``who``'s connection; back once the cluster took the leave
        (its id joins again, here on ``node``, and leaves again)."""
        await client.close()
        for _ in range(200):
            probe = await connect(self, node.port)
            probe.send_json(join(*who, PASS=PASSWORDS[who[1]]))
            ack = await probe.next_object(WAIT)
            await probe.close()
            if ack["TYPE"] == "OKAY":
                return
        self.fail(f"{who[1]} did not leave")

    async def test_the_same_known_list_from_every_node(self) -> None:
        redis = start_redis(self)
        database = pgsupport.fresh_database(self)
        one = await start_node(self, redis, "--db", database, *AUTH)
        two = await start_node(self, redis, "--db", database, *AUTH)
        carol, _ = await self.join(one, CAROL)
        carol.send_json(send("from Carol", [], CAROL[1]))
        mary, _ = await self.join(two, MARY, "history")
        self.assertEqual((await next_of(mary, "MSG"))["MSG"], "from Carol")
        await self.away(one, carol, CAROL)
        await self.away(two, mary, MARY)
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
        await self.away(two, dave, DAVE)
        # A node started now reads the known users from the database.
        three = await start_node(self, redis, "--db", database, *AUTH)
        _, got = await self.join(three, DAVE, "known")
        self.assertEqual(got[2], expected)
