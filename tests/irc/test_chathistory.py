"""IRCv3 ``batch`` and ``draft/chathistory``: the parsing and refusals in
memory, the bisecting on a real SQLite store, and every subcommand against
a real ``twistd`` with a ``ChatClient`` talking."""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.client.client import ChatClient
from muca.irc.history import BadQuery, Query, Ref, RoomHistory, parse_query
from muca.protocol.messages import ChatMessage
from muca.store.sqlite import SQLiteStore
from tests.irc.support import IrcClient, IrcLineClient, connect_irc
from tests.support import MemoryServer
from tests.support.client import RecordingObserver, wait_until
from tests.support.twistd import Twistd, fresh_directory, start_twistd

T0 = 1_765_000_000_000


class QueryTests(SynchronousTestCase):
    def test_queries_parsed(self) -> None:
        self.assertEqual(
            parse_query(["latest", "#general", "*", "500"]),
            Query("LATEST", "#general", (Ref("*"),), 100),
        )
        self.assertEqual(
            parse_query(
                [
                    "BETWEEN",
                    "#dev",
                    "msgid=12",
                    "timestamp=2025-12-06T05:46:40.250Z",
                    "7",
                ]
            ),
            Query(
                "BETWEEN",
                "#dev",
                (Ref("msgid", 12), Ref("timestamp", T0 + 250)),
                7,
            ),
        )

    def test_bad_queries(self) -> None:
        for params, code in [
            (["TARGETS", "*", "*", "5"], "UNKNOWN_COMMAND"),
            (["BEFORE", "#general", "*", "5"], "INVALID_PARAMS"),
            (["BEFORE", "#general", "msgid=abc", "5"], "INVALID_PARAMS"),
            (["AFTER", "#general", "timestamp=yesterday", "5"], "INVALID_PARAMS"),
            (
                ["AFTER", "#general", "timestamp=2025-12-06T05:46:40", "5"],
                "INVALID_PARAMS",
            ),
            (["LATEST", "#general", "*", "0"], "INVALID_PARAMS"),
            (["LATEST", "#general", "*", "-1"], "INVALID_PARAMS"),
            (["LATEST", "#general", "*"], "INVALID_PARAMS"),
            (["BETWEEN", "#general", "msgid=1", "5"], "INVALID_PARAMS"),
        ]:
            with self.assertRaises(BadQuery) as caught:
                parse_query(params)
            self.assertEqual(caught.exception.code, code, params)


class InMemoryTests(SynchronousTestCase):
    """A server without a history: no draft/chathistory offered, and a
    CHATHISTORY line is one FAIL."""

    def setUp(self) -> None:
        self.server = MemoryServer(rate=None)
        self.addCleanup(self.server.stop)
        self.alice = IrcClient(self.server)
        self.addCleanup(self.alice.lose)

    def test_not_offered_without_a_history(self) -> None:
        self.alice.send("CAP LS 302")
        (line,) = self.alice.take()
        self.assertEqual(
            line, ":muca CAP * LS :server-time message-tags echo-message batch"
        )
        self.alice.send("CAP REQ draft/chathistory")
        self.assertEqual(self.alice.take(), [":muca CAP * NAK :draft/chathistory"])

    def test_refusals(self) -> None:
        self.alice.send("CAP END")
        self.alice.register("alice")
        self.alice.send(
            "CHATHISTORY",
            "CHATHISTORY TARGETS * * 5",
            "CHATHISTORY LATEST #general msgid=x 5",
            "CHATHISTORY LATEST mary * 5",
            "CHATHISTORY LATEST #general * 5",
        )
        self.assertEqual(
            self.alice.take(),
            [
                ":muca 461 alice CHATHISTORY :Not enough parameters",
                ":muca FAIL CHATHISTORY UNKNOWN_COMMAND TARGETS"
                " :Unknown CHATHISTORY subcommand",
                ":muca FAIL CHATHISTORY INVALID_PARAMS LATEST"
                " :not a message reference: msgid=x",
                ":muca FAIL CHATHISTORY INVALID_TARGET LATEST mary"
                " :Only channels' history can be read here",
                ":muca FAIL CHATHISTORY MESSAGE_ERROR LATEST #general"
                " :this server keeps no history",
            ],
        )


class BisectingTests(TestCase):
    """RoomHistory on a real store: a room's messages among another's, ids
    with gaps, several messages in one millisecond."""

    async def test_every_subcommand(self) -> None:
        store = SQLiteStore(os.path.join(fresh_directory(self), "h.db"))
        await store.open()
        self.addCleanup(store.close)
        messages = []
        ours = []
        for ident in range(1, 61):
            room = "dev" if ident % 3 else "other"
            # Two messages a millisecond.
            message = ChatMessage(
                ident, T0 + ident // 2, "mary", "ALL", (), f"m{ident}", "Mary", room
            )
            messages.append(message)
            if room == "dev":
                ours.append(message)
        await store.append(messages)

        def before(upper: int, limit: int):  # type: ignore[no-untyped-def]
            return store.before("alice", False, upper, limit, rooms=("dev",))

        history = RoomHistory(before, 61)

        async def ask(*params: str) -> list[int]:
            found = await history.answer(parse_query(list(params)))
            return [m.id for m in found]

        ids = [m.id for m in ours]
        self.assertEqual(await ask("LATEST", "#dev", "*", "3"), ids[-3:])
        self.assertEqual(await ask("LATEST", "#dev", "msgid=55", "10"), [56, 58, 59])
        self.assertEqual(await ask("BEFORE", "#dev", "msgid=10", "3"), [5, 7, 8])
        self.assertEqual(await ask("AFTER", "#dev", "msgid=10", "3"), [11, 13, 14])
        self.assertEqual(await ask("AFTER", "#dev", "msgid=0", "2"), [1, 2])
        self.assertEqual(await ask("AFTER", "#dev", "msgid=59", "2"), [])
        self.assertEqual(await ask("AROUND", "#dev", "msgid=20", "4"), [17, 19, 20, 22])
        self.assertEqual(
            await ask("BETWEEN", "#dev", "msgid=4", "msgid=14", "100"),
            [5, 7, 8, 10, 11, 13],
        )
        self.assertEqual(
            await ask("BETWEEN", "#dev", "msgid=4", "msgid=14", "2"), [5, 7]
        )
        self.assertEqual(
            await ask("BETWEEN", "#dev", "msgid=14", "msgid=4", "2"), [11, 13]
        )
        # Ids 20 and 21 share T0 + 10 ms: before it are those up to 19,
        # after it those from 22.
        at = "timestamp=2025-12-06T05:46:40.010Z"
        self.assertEqual(await ask("BEFORE", "#dev", at, "2"), [17, 19])
        self.assertEqual(await ask("AFTER", "#dev", at, "2"), [22, 23])
        self.assertEqual(await ask("AROUND", "#dev", at, "2"), [19, 20])
        self.assertEqual((await ask("LATEST", "#dev", at, "100"))[:2], [22, 23])
        late = "timestamp=2030-01-01T00:00:00.000Z"
        self.assertEqual(await ask("AFTER", "#dev", late, "5"), [])
        self.assertEqual(await ask("BEFORE", "#dev", late, "2"), ids[-2:])


def batch_of(lines: list[str]) -> tuple[str, list[str]]:
    """A chathistory batch's target and its messages' texts; every line in
    it carries the batch's tag."""
    opening, *inside, closing = lines
    _, _, plus, kind, target = opening.split(" ")
    ident = plus[1:]
    assert (plus[0], kind, closing) == ("+", "chathistory", f":muca BATCH -{ident}")
    texts = []
    for line in inside:
        tags, _, rest = line.partition(" ")
        assert tags.startswith(f"@batch={ident};"), line
        texts.append(rest.split(" :", 1)[1])
    return target, texts


class TwistdChatHistoryTests(TestCase):
    async def setUp(self) -> None:
        self.twistd: Twistd = await start_twistd(
            self, "--irc", "tcp:0:interface=127.0.0.1"
        )
        match = await self.twistd.process.wait_for(r"muca: IRC on 127\.0\.0\.1:(\d+)")
        self.irc_port = int(match.group(1))

    async def registered(self, nick: str) -> IrcLineClient:
        client = await connect_irc(self, self.irc_port)
        client.send("CAP LS 302", f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        offered = await client.line_with("CAP * LS")
        self.assertIn("batch draft/chathistory", offered)
        client.send(
            "CAP REQ :server-time message-tags batch draft/chathistory", "CAP END"
        )
        await client.line_with("CHATHISTORY=100 MSGREFTYPES=msgid,timestamp")
        await client.line_with(" 366 ")
        return client

    async def batch(self, client: IrcLineClient, line: str) -> list[str]:
        client.send(line)
        opening = await client.line_with(" BATCH +")
        ident = opening.split(" ")[2][1:]
        lines = [opening]
        while not lines[-1].endswith(f"BATCH -{ident}"):
            lines.append(await client.until(lambda _: True, "in the batch"))
        target, texts = batch_of(lines)
        self.assertEqual(target, "#general")
        return texts

    async def test_subcommands_against_twistd(self) -> None:
        observer = RecordingObserver()
        mary = ChatClient(reactor, "Mary", "mary@hku.hk", observer, timeout=5.0)
        self.addCleanup(mary.leave)
        await mary.connect_tcp("127.0.0.1", self.twistd.port)
        await mary.join()
        alice = await self.registered("alice")
        await wait_until(lambda: "alice" in [p.uid for p in mary.peers], what="alice")
        await mary.enter("dev")
        mary.send([], "not in general", room="dev")
        tags: list[str] = []
        for n in range(1, 7):
            mary.send([], f"m{n}")
            line = await alice.line_with(f"PRIVMSG #general :m{n}")
            tags.append(line.split(" ")[0])
            # Each in a millisecond of its own.
            await deferLater(reactor, 0.005, lambda: None)
        ids = [tag.split("msgid=")[1] for tag in tags]
        times = [tag.split(";")[0][len("@time=") :] for tag in tags]
        batch = self.batch
        self.assertEqual(
            await batch(alice, "CHATHISTORY LATEST #general * 3"), ["m4", "m5", "m6"]
        )
        self.assertEqual(
            await batch(alice, f"CHATHISTORY BEFORE #general msgid={ids[3]} 2"),
            ["m2", "m3"],
        )
        self.assertEqual(
            await batch(alice, f"CHATHISTORY AFTER #general msgid={ids[1]} 2"),
            ["m3", "m4"],
        )
        self.assertEqual(
            await batch(alice, f"CHATHISTORY AROUND #general msgid={ids[2]} 3"),
            ["m2", "m3", "m4"],
        )
        self.assertEqual(
            await batch(
                alice, f"CHATHISTORY BETWEEN #general msgid={ids[0]} msgid={ids[5]} 9"
            ),
            ["m2", "m3", "m4", "m5"],
        )
        self.assertEqual(
            await batch(
                alice, f"CHATHISTORY BETWEEN #general msgid={ids[5]} msgid={ids[0]} 2"
            ),
            ["m4", "m5"],
        )
        self.assertEqual(
            await batch(alice, f"CHATHISTORY BEFORE #general timestamp={times[2]} 9"),
            ["m1", "m2"],
        )
        self.assertEqual(
            await batch(alice, f"CHATHISTORY LATEST #general timestamp={times[3]} 9"),
            ["m5", "m6"],
        )
        # Its lines are as a live message's, in the batch.
        alice.send("CHATHISTORY AFTER #general msgid=0 1")
        await alice.line_with(" BATCH +")
        line = await alice.line_with("PRIVMSG")
        self.assertRegex(
            line,
            rf"^@batch=h\d+;time={times[0]};msgid={ids[0]}"
            r" :Mary!mary@muca PRIVMSG #general :m1$",
        )
        alice.send("CHATHISTORY LATEST #nowhere * 5")
        self.assertEqual(
            await alice.line_with(" FAIL "),
            ":muca FAIL CHATHISTORY INVALID_TARGET LATEST #nowhere"
            " :there is no room 'nowhere'",
        )
        # A client with draft/chathistory has no playback at registration:
        # the messages come only in the batch it asks for.
        bob = await self.registered("bob")
        self.assertEqual(await batch(bob, "CHATHISTORY LATEST #general * 1"), ["m6"])
        (only,) = [line for line in bob.lines if " PRIVMSG #" in line]
        self.assertTrue(only.startswith("@batch="), only)
