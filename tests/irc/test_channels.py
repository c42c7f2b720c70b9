"""An IRC user in MUCA's rooms: channels, messages both ways, the
queries IRC clients make."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.irc.support import IrcClient, codes
from tests.support import MemoryPeer, MemoryServer

MARY = ":Mary!mary@muca"
ALICE = ":alice!alice@muca"


class ChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = MemoryServer(rate=None)
        self.addCleanup(self.server.stop)
        # Message times as IRCv3 server-time shows them.
        self.server.clock.advance(1765000000.25)
        self.mary = self.muca("Mary", "mary@hku.hk", rooms=True)
        self.alice = self.irc("alice")

    def irc(self, nick: str, *extra: str) -> IrcClient:
        client = IrcClient(self.server)
        self.addCleanup(client.lose)
        client.register(nick, *extra)
        return client

    def muca(self, nickname: str, uid: str, rooms: bool = False) -> MemoryPeer:
        peer = self.server.connect()
        caps = ["rooms"] if rooms else []
        peer.send_json(
            {"CMD": "JOIN", "UN": nickname, "UID": uid, "V": 2, "CAPS": caps}
        )
        peer.take()
        return peer

    def mary_sends(self, text: str, to: list[str] | None = None, **extra: Any) -> None:
        send = {"CMD": "SEND", "MSG": text, "TO": to or [], "FROM": "mary@hku.hk"}
        self.mary.send_json({**send, **extra})

    def test_broadcasts_both_ways(self) -> None:
        self.mary.take()
        self.mary_sends("hello\nworld")
        self.assertEqual(
            self.alice.take(),
            [f"{MARY} PRIVMSG #general :hello", f"{MARY} PRIVMSG #general :world"],
        )
        self.alice.send("PRIVMSG #general :hi there", "NOTICE #general :noted")
        got = [(m["TYPE"], m["MSG"], m["FROM"], m["ROOM"]) for m in self.mary.take()]
        self.assertEqual(
            got,
            [
                ("ALL", "hi there", "alice", "general"),
                ("ALL", "noted", "alice", "general"),
            ],
        )
        self.assertEqual(self.alice.take(), [])

    def test_private_and_group_messages(self) -> None:
        self.mary.take()
        self.alice.send("PRIVMSG mary :lower case finds Mary")
        (message,) = self.mary.take()
        self.assertEqual(
            (message["TYPE"], message["MSG"], message["FROM"]),
            ("PRIVATE", "lower case finds Mary", "alice"),
        )
        tony = self.muca("Tony", "tony@hku.hk")
        self.mary_sends("to both", ["alice", "tony@hku.hk"])
        self.assertIn(f"{MARY} PRIVMSG alice :to both", self.alice.take())
        tony.take()

    def test_unknown_targets(self) -> None:
        self.alice.send("PRIVMSG nobody :x", "PRIVMSG #nowhere :x", "NOTICE nobody :x")
        self.assertEqual(
            self.alice.take(),
            [
                ":muca 401 alice nobody :No such nick/channel",
                ":muca 403 alice #nowhere :there is no room 'nowhere': not delivered",
            ],
        )
        self.alice.send("PRIVMSG", "PRIVMSG #general", "PRIVMSG #general :")
        self.assertEqual(codes(self.alice.take()), ["411", "412", "412"])

    def test_echo_and_tags(self) -> None:
        tagged = self.irc("bob", "CAP REQ :echo-message server-time message-tags")
        tagged.send("CAP END")
        tagged.take()
        self.alice.take()
        self.mary.take()
        tagged.send("PRIVMSG #general :mine")
        (echo,) = tagged.take()
        # The echo has the id the others' copies have.
        (seen,) = self.mary.take()
        self.assertEqual(
            echo,
            f"@time=2025-12-06T05:46:40.250Z;msgid={seen['ID']}"
            " :bob!bob@muca PRIVMSG #general :mine",
        )
        self.mary_sends("tagged")
        (line,) = tagged.take()
        self.assertRegex(
            line,
            r"^@time=2025-12-06T05:46:40\.250Z;msgid=\d+"
            r" :Mary!mary@muca PRIVMSG #general :tagged$",
        )
        self.assertEqual(
            self.alice.take(),
            [
                ":bob!bob@muca PRIVMSG #general :mine",
                f"{MARY} PRIVMSG #general :tagged",
            ],
        )

    def test_echoes_have_the_ids_of_the_messages(self) -> None:
        tagged = self.irc("bob", "CAP REQ :echo-message message-tags")
        tagged.send("CAP END")
        tagged.take()
        self.mary.take()
        tagged.send(
            "PRIVMSG mary,alice :to two",
            "NOTICE Mary :noted",
            "PRIVMSG nobody :lost",
            "PRIVMSG bob :to me",
        )
        lines = tagged.take()
        ids = [m["ID"] for m in self.mary.take()]
        (alices,) = [line for line in self.alice.take() if "to two" in line]
        self.assertEqual(len(ids), 2)
        self.assertEqual(
            lines,
            [
                f"@msgid={ids[0]} :bob!bob@muca PRIVMSG mary :to two",
                f"@msgid={ids[0] + 1} :bob!bob@muca PRIVMSG alice :to two",
                f"@msgid={ids[1]} :bob!bob@muca NOTICE Mary :noted",
                ":muca 401 bob nobody :No such nick/channel",
                ":bob!bob@muca PRIVMSG bob :to me",
            ],
        )
        self.assertEqual(alices, ":bob!bob@muca PRIVMSG alice :to two")

    def test_echo_alone_in_a_room_has_no_id(self) -> None:
        tagged = self.irc("bob", "CAP REQ :echo-message message-tags")
        tagged.send("CAP END", "JOIN #quiet")
        tagged.take()
        tagged.send("PRIVMSG #quiet :anyone?")
        self.assertEqual(tagged.take(), [":bob!bob@muca PRIVMSG #quiet :anyone?"])

    def test_actions_both_ways(self) -> None:
        self.mary.take()
        self.alice.send("PRIVMSG #general :\x01ACTION waves\x01")
        (message,) = self.mary.take()
        self.assertEqual(message["MSG"], "* alice waves")
        self.mary_sends("* Mary smiles")
        self.mary_sends("* Tony is not Mary")
        self.mary_sends("* Mary ")
        self.assertEqual(
            self.alice.take(),
            [
                f"{MARY} PRIVMSG #general :\x01ACTION smiles\x01",
                f"{MARY} PRIVMSG #general :* Tony is not Mary",
                f"{MARY} PRIVMSG #general :* Mary ",
            ],
        )
        # A long one is several actions, each within the line limit.
        self.mary_sends("* Mary " + "é" * 600)
        lines = self.alice.take()
        self.assertEqual(len(lines), 3)
        body = ""
        for line in lines:
            self.assertLessEqual(len(line.encode()) + 2, 512)
            head, _, text = line.partition(" :")
            self.assertEqual(head, f"{MARY} PRIVMSG #general")
            self.assertTrue(text.startswith("\x01ACTION ") and text.endswith("\x01"))
            body += text[len("\x01ACTION ") : -1]
        self.assertEqual(body, "é" * 600)

    def test_an_action_echoed_as_sent(self) -> None:
        tagged = self.irc("bob", "CAP REQ :echo-message")
        tagged.send("CAP END")
        tagged.take()
        self.mary.take()
        tagged.send("PRIVMSG mary :\x01ACTION nods\x01")
        self.assertEqual(
            tagged.take(), [":bob!bob@muca PRIVMSG mary :\x01ACTION nods\x01"]
        )
        (message,) = self.mary.take()
        self.assertEqual((message["TYPE"], message["MSG"]), ("PRIVATE", "* bob nods"))

    def test_a_broadcast_is_made_once_for_clients_with_the_same_tags(self) -> None:
        bob = self.irc("bob")
        tagged = self.irc("carol", "CAP REQ :server-time message-tags")
        tagged.send("CAP END")
        for client in (self.alice, bob, tagged):
            client.take()
        self.mary_sends("to all")
        queued = self.server.factory.outbox._queued
        lines = {
            client: queued[client.protocol] for client in (self.alice, bob, tagged)
        }
        # The very same bytes for alice and bob, others for carol.
        self.assertIs(lines[self.alice][0], lines[bob][0])
        self.assertIsNot(lines[tagged][0], lines[bob][0])
        self.assertEqual(self.alice.take(), [f"{MARY} PRIVMSG #general :to all"])
        self.assertEqual(bob.take(), [f"{MARY} PRIVMSG #general :to all"])
        (line,) = tagged.take()
        self.assertRegex(
            line, rf"^@time=\S+;msgid=\d+ {MARY} PRIVMSG #general :to all$"
        )

    def test_long_messages_split_between_characters(self) -> None:
        text = "é" * 400 + "x" * 300
        self.mary_sends(text)
        lines = self.alice.take()
        self.assertGreater(len(lines), 1)
        head = f"{MARY} PRIVMSG #general :"
        joined = ""
        for line in lines:
            self.assertLessEqual(len(line.encode()) + 2, 512)
            self.assertTrue(line.startswith(head))
            joined += line[len(head) :]
        self.assertEqual(joined, text)

    def test_join_part_and_rosters(self) -> None:
        self.alice.send("JOIN #Dev,bad,#no.dots")
        self.assertEqual(
            self.alice.take(),
            [
                f"{ALICE} JOIN :#dev",
                ":muca 331 alice #dev :No topic is set",
                ":muca 403 alice bad :No such channel",
                ":muca 479 alice #no.dots :Illegal channel name",
                # With the room's first roster, at the end of the turn.
                ":muca 353 alice = #dev :@alice",
                ":muca 366 alice #dev :End of /NAMES list.",
            ],
        )
        self.mary.take()
        self.mary.send_json({"CMD": "ENTER", "ROOM": "dev"})
        self.mary.take()
        self.assertEqual(self.alice.take(), [f"{MARY} JOIN :#dev"])
        self.mary_sends("in dev", ROOM="dev")
        self.assertEqual(self.alice.take(), [f"{MARY} PRIVMSG #dev :in dev"])
        self.mary.send_json({"CMD": "EXIT", "ROOM": "dev"})
        self.mary.take()
        self.assertEqual(self.alice.take(), [f"{MARY} PART #dev :left the room"])
        self.alice.send("PART #dev :done", "PART #dev", "PRIVMSG #dev :gone")
        self.assertEqual(
            self.alice.take(),
            [
                f"{ALICE} PART #dev :done",
                ":muca 442 alice #dev :You're not on that channel",
                ":muca 404 alice #dev :you are not in the room 'dev': enter it first;"
                " not delivered",
            ],
        )
        self.mary.lose()
        self.assertEqual(self.alice.take(), [f"{MARY} QUIT :left the chat"])

    def test_topic(self) -> None:
        self.alice.send("JOIN #dev", "TOPIC #dev :our topic", "TOPIC #dev")
        self.assertEqual(
            self.alice.take(),
            [
                f"{ALICE} JOIN :#dev",
                ":muca 331 alice #dev :No topic is set",
                f"{ALICE} TOPIC #dev :our topic",
                ":muca 332 alice #dev :our topic",
                ":muca 353 alice = #dev :@alice",
                ":muca 366 alice #dev :End of /NAMES list.",
            ],
        )
        self.alice.send("TOPIC #general :mine now?")
        self.assertEqual(
            self.alice.take(),
            [":muca 482 alice #general :only the server may change the room 'general'"],
        )
        bob = self.irc("bob")
        bob.send("JOIN #dev")
        self.assertIn(":muca 332 bob #dev :our topic", bob.take())

    def test_invite_only_room(self) -> None:
        self.mary.send_json({"CMD": "ENTER", "ROOM": "secret"})
        self.mary.send_json({"CMD": "ROOMSET", "ROOM": "secret", "PRIVATE": True})
        self.mary.take()
        self.alice.take()
        self.alice.send("JOIN #secret")
        self.assertEqual(
            self.alice.take(),
            [
                ":muca 473 alice #secret :the room 'secret' is private:"
                " a member must invite you"
            ],
        )

    def test_queries(self) -> None:
        self.alice.take()
        self.alice.send("NAMES #general", "WHO #general", "WHOIS Mary", "WHOIS zed")
        self.assertEqual(
            self.alice.take(),
            [
                ":muca 353 alice = #general :Mary alice",
                ":muca 366 alice #general :End of /NAMES list.",
                ":muca 352 alice #general mary muca muca Mary H :0 mary@hku.hk",
                ":muca 352 alice #general alice muca muca alice H :0 alice",
                ":muca 315 alice #general :End of /WHO list.",
                ":muca 311 alice Mary mary muca * :mary@hku.hk",
                ":muca 319 alice Mary :#general",
                ":muca 312 alice Mary muca :MUCA chat server",
                ":muca 318 alice Mary :End of /WHOIS list.",
                ":muca 401 alice zed :No such nick/channel",
                ":muca 318 alice zed :End of /WHOIS list.",
            ],
        )
        self.alice.send("LIST", "MODE #general", "MODE #general b", "MODE #general +m")
        self.assertEqual(
            self.alice.take(),
            [
                ":muca 321 alice Channel :Users  Name",
                ":muca 322 alice #general 2 :",
                ":muca 323 alice :End of /LIST",
                ":muca 324 alice #general :+nt",
                ":muca 368 alice #general :End of channel ban list",
                ":muca 482 alice #general"
                " :Channel modes cannot be changed over IRC yet",
            ],
        )
        self.alice.send("MODE alice", "MODE alice +i", "MODE alice", "MODE alice +x")
        self.assertEqual(
            self.alice.take(),
            [
                ":muca 221 alice :+",
                f"{ALICE} MODE alice :+i",
                ":muca 221 alice :+i",
                ":muca 501 alice :Unknown MODE flag",
            ],
        )

    def test_away(self) -> None:
        bob = self.irc("bob")
        self.alice.take()
        bob.send("AWAY :lunch")
        self.assertEqual(
            bob.take(), [":muca 306 bob :You have been marked as being away"]
        )
        self.alice.send("PRIVMSG bob :there?", "WHOIS bob")
        lines = self.alice.take()
        self.assertEqual(lines[0], ":muca 301 alice bob :lunch")
        self.assertIn(":muca 301 alice bob :lunch", lines[1:])
        self.assertEqual(bob.take(), [f"{ALICE} PRIVMSG bob :there?"])
        bob.send("AWAY")
        self.assertEqual(
            bob.take(), [":muca 305 bob :You are no longer marked as being away"]
        )

    def test_a_nickname_irc_cannot_show(self) -> None:
        zoe = self.muca("Zoé B", "zoe@hku.hk")
        lines = self.alice.take()
        (join,) = [line for line in lines if "JOIN" in line]
        nick = join[1:].split("!")[0]
        self.assertRegex(nick, r"^Zo__B\|[0-9a-f]{4}$")
        # The same form on every connection, and it reaches her.
        bob = IrcClient(self.server)
        self.addCleanup(bob.lose)
        self.assertIn(nick, bob.register("bob")[-2])
        self.alice.send(f"PRIVMSG {nick} :bonjour")
        (message,) = zoe.take()[-1:]
        self.assertEqual((message["FROM"], message["MSG"]), ("alice", "bonjour"))

    def test_invite_only_from_irc(self) -> None:
        self.alice.send("JOIN #ops", "MODE #ops +i", "MODE #ops")
        lines = self.alice.take()
        self.assertIn(f"{ALICE} MODE #ops :+i", lines)
        self.assertIn(":muca 324 alice #ops :+nti", lines)
        self.mary.take()
        self.mary.send_json({"CMD": "ENTER", "ROOM": "ops"})
        (error,) = self.mary.take()
        self.assertEqual(error["CODE"], "INVITE_ONLY")
        self.alice.send("INVITE Mary #ops", "INVITE nobody #ops", "INVITE Mary #dev")
        self.assertEqual(
            self.alice.take(),
            [
                ":muca 341 alice Mary :#ops",
                ":muca 401 alice nobody :No such nick/channel",
                ":muca 442 alice #dev :You're not on that channel",
            ],
        )
        self.mary.take()
        self.mary.send_json({"CMD": "ENTER", "ROOM": "ops"})
        self.assertEqual(self.mary.take()[0]["CMD"], "ENTERED")
        # Only its owner sets the room's modes.
        bob = self.irc("bob")
        bob.send("JOIN #ops")
        self.assertEqual(codes(bob.take()), ["473"])
        self.alice.send("INVITE bob #ops")
        self.alice.take()
        bob.send("JOIN #ops", "MODE #ops -i")
        self.assertIn(
            ":muca 482 bob #ops :only its owner may change the room 'ops'",
            bob.take(),
        )
