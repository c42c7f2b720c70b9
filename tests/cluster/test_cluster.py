"""One room over two or three real nodes and a real Redis: registry, rosters
in cluster-wide join order, the three message types, one order of ids."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.cluster.support import WAIT, join_on, next_of, roster_becomes, start_node
from tests.support import connect, join, send
from tests.support.redis import start_redis

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
HENRY = ("Henry", "henry@hku.hk")


class RoomAcrossNodesTests(TestCase):
    """Clients on different nodes see one room."""

    async def test_rosters_in_join_order_and_three_message_types(self) -> None:
        redis = start_redis(self)
        one = await start_node(self, redis)
        two = await start_node(self, redis)
        tony = await join_on(self, one, *TONY)
        mary = await join_on(self, two, *MARY)
        henry = await join_on(self, one, *HENRY)
        everyone = [TONY, MARY, HENRY]
        for client in (tony, mary, henry):
            await roster_becomes(client, everyone)

        tony.send_json(send("hello all", [], TONY[1]))
        for client in (mary, henry):
            got = await next_of(client, "MSG")
            self.assertEqual(
                (got["TYPE"], got["MSG"], got["FROM"]), ("ALL", "hello all", TONY[1])
            )
        mary.send_json(send("psst", [TONY[1]], MARY[1]))
        got = await next_of(tony, "MSG")
        self.assertEqual(
            (got["TYPE"], got["MSG"], got["FROM"]), ("PRIVATE", "psst", MARY[1])
        )
        henry.send_json(send("us two", [TONY[1], MARY[1]], HENRY[1]))
        for client in (tony, mary):
            got = await next_of(client, "MSG")
            self.assertEqual(
                (got["TYPE"], got["MSG"], got["TO"]),
                ("GROUP", "us two", [TONY[1], MARY[1]]),
            )
        # Ids increase in acceptance order, cluster-wide.
        self.assertEqual(henry.pending(), [])

        # Mary leaves from node two: node one's users see it.
        mary.close()
        for client in (tony, henry):
            await roster_becomes(client, [TONY, HENRY])

    async def test_unknown_recipient_is_checked_cluster_wide(self) -> None:
        redis = start_redis(self)
        one = await start_node(self, redis)
        two = await start_node(self, redis)
        tony = await join_on(self, one, *TONY)
        await join_on(self, two, *MARY)
        await roster_becomes(tony, [TONY, MARY])
        tony.send_json(send("to both", [MARY[1], "nobody@hku.hk"], TONY[1]))
        error = await next_of(tony, "ERROR")
        self.assertEqual(error["CODE"], "UNKNOWN_RECIPIENT")
        self.assertIn("nobody@hku.hk", error["REASON"])


class UniquenessTests(TestCase):
    """A user id and a nickname are unique across the cluster."""

    async def test_racing_joins_give_one_okay_per_id(self) -> None:
        redis = start_redis(self)
        nodes = [await start_node(self, redis) for _ in range(3)]
        # Every node gets a connection per id, all sent at once.
        ids = [f"user{i}@hku.hk" for i in range(20)]
        clients = []
        for index in range(3):
            for uid in ids:
                client = await connect(self, nodes[index].port)
                clients.append((uid, client))
        for uid, client in clients:
            # The same nickname per id, so only the id decides.
            client.send_json(join(f"nick{uid.split('@')[0]}", uid))
        replies = await defer.gatherResults([c.next_objects(1) for _, c in clients])
        acks = [reply[0] for reply in replies]
        for uid in ids:
            verdicts = sorted(
                (ack["TYPE"], ack.get("CODE"))
                for (who, _), ack in zip(clients, acks, strict=True)
                if who == uid
            )
            self.assertEqual(
                verdicts,
                [("FAIL", "UID_TAKEN"), ("FAIL", "UID_TAKEN"), ("OKAY", None)],
                uid,
            )

    async def test_nickname_taken_on_another_node(self) -> None:
        redis = start_redis(self)
        one = await start_node(self, redis)
        two = await start_node(self, redis)
        await join_on(self, one, *TONY)
        other = await connect(self, two.port)
        other.send_json(join(TONY[0], "someone@hku.hk"))
        ack = await other.next_object(WAIT)
        self.assertEqual((ack["TYPE"], ack["CODE"]), ("FAIL", "NICK_TAKEN"))


class OneOrderTests(TestCase):
    """Several senders on several nodes: one order for every recipient."""

    async def test_every_recipient_sees_increasing_ids_exactly_once(self) -> None:
        redis = start_redis(self)
        nodes = [await start_node(self, redis) for _ in range(3)]
        people = [(f"P{i}", f"p{i}@hku.hk") for i in range(6)]
        clients = [
            await join_on(self, nodes[i % 3], nickname, uid)
            for i, (nickname, uid) in enumerate(people)
        ]
        for client in clients:
            await roster_becomes(client, people)
        count = 30
        for round_ in range(count):
            for (_, uid), client in zip(people, clients, strict=True):
                client.send_json(send(f"{uid} {round_}", [], uid))
        expected = count * (len(people) - 1)
        ids_of: dict[str, int] = {}
        for (_, uid), client in zip(people, clients, strict=True):
            got = []
            while len(got) < expected:
                got.append(await next_of(client, "MSG"))
            ids = [m["ID"] for m in got]
            self.assertEqual(ids, sorted(set(ids)), f"{uid}: ids not increasing")
            texts = [m["MSG"] for m in got]
            self.assertEqual(len(set(texts)), expected, f"{uid}: lost or doubled")
            self.assertNotIn(uid, {m["FROM"] for m in got})
            for message in got:
                # The same message has the same id everywhere: one order.
                self.assertEqual(
                    ids_of.setdefault(message["MSG"], message["ID"]), message["ID"]
                )
            # Each sender's own messages arrive in the order it sent them.
            for _, other in people:
                mine = [t for t in texts if t.startswith(other + " ")]
                self.assertEqual(mine, sorted(mine, key=lambda t: int(t.split()[1])))
