"""An IRC user on one node of a cluster (real ``twistd --cluster`` on a
real redis-server), a MUCA user on another: they talk both ways, in
#general, in private and in a second room the cluster shares."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.cluster.support import WAIT, join_on, next_of, start_node
from tests.irc.support import connect_irc
from tests.support import send
from tests.support.redis import start_redis

MARY = ("Mary", "mary@hku.hk")


class IrcOnAClusterTests(TestCase):
    timeout = 120

    async def test_irc_on_one_node_muca_on_another(self) -> None:
        redis = start_redis(self)
        irc_node = await start_node(self, redis, "--irc", "tcp:0:interface=127.0.0.1")
        match = await irc_node.process.wait_for(r"muca: IRC on 127\.0\.0\.1:(\d+)")
        other = await start_node(self, redis)
        mary = await join_on(self, other, *MARY, CAPS=["rooms"])
        alice = await connect_irc(self, int(match.group(1)))
        alice.send("NICK alice", "USER alice 0 * :Alice")
        await alice.line_with(" 001 alice ")
        names = await alice.line_with(" 353 ")
        self.assertEqual(names, ":muca 353 alice = #general :Mary alice")
        # Mary, on the other node, is heard in #general...
        mary.send_json(send("from the other node", [], MARY[1]))
        line = await alice.line_with("from the other node")
        self.assertTrue(
            line.endswith(":Mary!mary@muca PRIVMSG #general :from the other node")
        )
        # ...and hears alice's #general and private messages.
        alice.send("PRIVMSG #general :hello cluster", "PRIVMSG Mary :psst")
        message = await next_of(mary, "MSG", WAIT)
        self.assertEqual(
            (message["TYPE"], message["FROM"], message["MSG"]),
            ("ALL", "alice", "hello cluster"),
        )
        message = await next_of(mary, "MSG", WAIT)
        self.assertEqual((message["TYPE"], message["MSG"]), ("PRIVATE", "psst"))
        mary.send_json(send("back at you", ["alice"], MARY[1]))
        line = await alice.line_with("back at you")
        self.assertTrue(line.endswith(":Mary!mary@muca PRIVMSG alice :back at you"))
        # A second room, across the nodes.
        alice.send("JOIN #dev")
        await alice.line_with(":alice!alice@muca JOIN :#dev")
        mary.send_json({"CMD": "ENTER", "ROOM": "dev"})
        await next_of(mary, "ENTERED", WAIT)
        # Her JOIN, or (entered before the room's first roster) in NAMES.
        await alice.until(
            lambda line: (
                line == ":Mary!mary@muca JOIN :#dev"
                or (" 353 alice = #dev :" in line and "Mary" in line)
            ),
            "Mary in #dev",
        )
        mary.send_json({**send("in dev", [], MARY[1]), "ROOM": "dev"})
        line = await alice.line_with("in dev")
        self.assertTrue(line.endswith(":Mary!mary@muca PRIVMSG #dev :in dev"))
        alice.send("PRIVMSG #dev :dev reply")
        message = await next_of(mary, "MSG", WAIT)
        self.assertEqual((message["ROOM"], message["MSG"]), ("dev", "dev reply"))
