"""A real ``twistd -n muca --irc``: IRC clients and MUCA clients (a
``ChatClient``) in the same rooms, over loopback TCP."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from tests.irc.support import IrcLineClient, connect_irc
from tests.support.client import RecordingObserver, wait_until
from tests.support.twistd import Twistd, start_twistd

MARY = ("Mary", "mary@hku.hk")


class TwistdIrcTests(TestCase):
    async def setUp(self) -> None:
        self.twistd: Twistd = await start_twistd(
            self, "--irc", "tcp:0:interface=127.0.0.1"
        )
        match = await self.twistd.process.wait_for(r"muca: IRC on 127\.0\.0\.1:(\d+)")
        self.irc_port = int(match.group(1))

    async def mary(self) -> tuple[ChatClient, RecordingObserver]:
        observer = RecordingObserver()
        client = ChatClient(reactor, *MARY, observer, timeout=5.0)
        self.addCleanup(client.leave)
        await client.connect_tcp("127.0.0.1", self.twistd.port)
        await client.join()
        return client, observer

    async def alice(self) -> IrcLineClient:
        alice = await connect_irc(self, self.irc_port)
        alice.send("CAP LS 302", "NICK alice", "USER alice 0 * :Alice A")
        await alice.line_with("CAP * LS")
        alice.send("CAP REQ :server-time message-tags", "CAP END")
        await alice.line_with(" 001 alice ")
        await alice.line_with(":alice!alice@muca JOIN :#general")
        return alice

    async def test_both_ways_in_general_and_in_private(self) -> None:
        mary, observer = await self.mary()
        alice = await self.alice()
        names = await alice.line_with(" 353 ")
        self.assertEqual(names, ":muca 353 alice = #general :Mary alice")
        await wait_until(lambda: "alice" in [p.uid for p in mary.peers], what="alice")
        # Mary's broadcast reaches alice in #general, with its time and id.
        mary.send([], "hello irc\nsecond line")
        first = await alice.line_with("PRIVMSG #general :hello irc")
        tags, _, rest = first.partition(" ")
        self.assertEqual(rest, ":Mary!mary@muca PRIVMSG #general :hello irc")
        self.assertRegex(
            tags, r"^@time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z;msgid=\d+$"
        )
        second = await alice.line_with("second line")
        self.assertTrue(second.endswith("PRIVMSG #general :second line"))
        # alice's PRIVMSG #general reaches Mary as a room broadcast.
        alice.send("PRIVMSG #general :hi Mary")
        message = await observer.next_of("message")
        self.assertEqual(
            (message.kind, message.sender_uid, message.text),
            ("ALL", "alice", "hi Mary"),
        )
        # Private messages both ways.
        alice.send("PRIVMSG Mary :just you")
        message = await observer.next_of("message", 2)
        self.assertEqual((message.kind, message.text), ("PRIVATE", "just you"))
        mary.send(["alice"], "and you")
        line = await alice.line_with("and you")
        self.assertTrue(line.endswith(":Mary!mary@muca PRIVMSG alice :and you"))

    async def test_a_second_channel(self) -> None:
        mary, observer = await self.mary()
        alice = await self.alice()
        alice.send("JOIN #dev")
        await alice.line_with(":alice!alice@muca JOIN :#dev")
        self.assertEqual(
            await alice.line_with(" 353 "), ":muca 353 alice = #dev :@alice"
        )
        await mary.enter("dev")
        await alice.line_with(":Mary!mary@muca JOIN :#dev")
        mary.send([], "in dev", room="dev")
        line = await alice.line_with("in dev")
        self.assertTrue(line.endswith("PRIVMSG #dev :in dev"))
        alice.send("PRIVMSG #dev :back in dev")
        message = await observer.next_of("message")
        self.assertEqual((message.room, message.text), ("dev", "back in dev"))
        # Mary leaves the server: alice sees her QUIT once.
        await mary.leave()
        line = await alice.line_with("QUIT")
        self.assertEqual(line, ":Mary!mary@muca QUIT :left the chat")
        alice.send("QUIT :bye")
        await alice.line_with("ERROR :Closing Link")
        await alice.closed

    async def test_the_last_messages_are_played_back_at_registration(self) -> None:
        mary, _ = await self.mary()
        observer = RecordingObserver()
        tony = ChatClient(reactor, "Tony", "tony@hku.hk", observer, timeout=5.0)
        self.addCleanup(tony.leave)
        await tony.connect_tcp("127.0.0.1", self.twistd.port)
        await tony.join()
        await mary.enter("dev")
        await tony.enter("dev")
        mary.send([], "said before")
        mary.send([], "and again")
        mary.send([], "said in dev", room="dev")
        # Delivered to Tony: accepted, and stored first.
        await observer.next_of("message", 3)
        alice = await self.alice()
        await alice.line_with(" 366 ")
        first = await alice.line_with("said before")
        self.assertRegex(
            first,
            r"^@time=\S+;msgid=\d+ :Mary!mary@muca PRIVMSG #general :said before$",
        )
        await alice.line_with("and again")
        # A room's own history plays back when it is entered.
        alice.send("JOIN #dev")
        line = await alice.line_with("said in dev")
        self.assertTrue(line.endswith(":Mary!mary@muca PRIVMSG #dev :said in dev"))
        # A client without server-time reads the time in the text.
        bob = await connect_irc(self, self.irc_port)
        bob.send("NICK bob", "USER bob 0 * :Bob")
        await bob.line_with(" 366 ")
        line = await bob.line_with("said before")
        self.assertRegex(
            line,
            r"^:Mary!mary@muca PRIVMSG #general"
            r" :\[\d{4}-\d\d-\d\d \d\d:\d\d\] said before$",
        )
