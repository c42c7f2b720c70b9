"""What an IRC client may get wrong, or do too much of: one numeric (or
nothing) each, never a traceback, nothing lost for the others."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from muca.irc import peer
from tests.irc.support import IrcClient, codes
from tests.support import MemoryServer


class BadLineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = MemoryServer(rate=None)
        self.addCleanup(self.server.stop)
        self.alice = IrcClient(self.server)
        self.addCleanup(self.alice.lose)
        self.alice.register("alice")

    def test_malformed_and_blank_lines(self) -> None:
        self.alice.protocol.dataReceived(b":prefixonly\r\n\r\n   \r\n!!! x\r\n")
        self.assertEqual(
            self.alice.take(),
            [
                ":muca NOTICE alice :Malformed line ignored",
                ":muca NOTICE alice :Malformed line ignored",
            ],
        )

    def test_tags_and_a_prefix_from_the_client_are_ignored(self) -> None:
        self.alice.send("@label=1;+draft/x=y :alice PING :tok")
        self.assertEqual(self.alice.take(), [":muca PONG muca :tok"])

    def test_latin1_text_is_read(self) -> None:
        mary = self.server.connect()
        mary.send_json({"CMD": "JOIN", "UN": "Mary", "UID": "mary", "V": 2})
        mary.take()
        self.alice.take()
        self.alice.protocol.dataReceived(b"PRIVMSG #general :caf\xe9\r\n")
        (message,) = mary.take()
        self.assertEqual(message["MSG"], "café")

    def test_over_long_lines(self) -> None:
        too_long = b"PRIVMSG #general :" + b"x" * peer.MAX_LINE + b"\r\n"
        self.alice.protocol.dataReceived(too_long + b"PING :after\r\n")
        self.assertEqual(
            self.alice.take(),
            [":muca 417 alice :Input line was too long", ":muca PONG muca :after"],
        )
        # Without its end yet: never more than MAX_LINE bytes held.
        self.alice.protocol.dataReceived(b"PRIVMSG #general :" + b"y" * 10_000)
        self.assertLessEqual(len(self.alice.protocol._buffer), peer.MAX_LINE)
        self.alice.protocol.dataReceived(b"y" * 10_000 + b"\r\nPING :again\r\n")
        self.assertEqual(
            self.alice.take(),
            [":muca 417 alice :Input line was too long", ":muca PONG muca :again"],
        )

    def test_parameters_missing(self) -> None:
        self.alice.send("JOIN", "PART", "TOPIC", "WHOIS", "MODE", "CAP")
        self.assertEqual(codes(self.alice.take()), ["461"] * 6)

    def test_garbage_never_breaks_the_connection(self) -> None:
        mary = self.server.connect()
        mary.send_json({"CMD": "JOIN", "UN": "Mary", "UID": "mary", "V": 2})
        mary.take()
        self.alice.take()
        words = [
            "PRIVMSG",
            "NOTICE",
            "JOIN",
            "PART",
            "TOPIC",
            "MODE",
            "WHO",
            "WHOIS",
            "NAMES",
            "LIST",
            "CAP",
            "NICK",
            "USER",
            "PASS",
            "AWAY",
            "PING",
            "#",
            "#general",
            ":",
            "::",
            ",",
            "#,#",
            "Mary",
            "0",
            "+b",
            "-",
            "é",
            "\x01",
        ]
        rng = random.Random(24)
        for _ in range(400):
            line = " ".join(rng.choice(words) for _ in range(rng.randint(1, 5)))
            self.alice.send(line)
        self.alice.take()
        self.alice.send("PING :still")
        self.assertEqual(self.alice.take()[-1], ":muca PONG muca :still")
        mary.take()


class FloodTests(SynchronousTestCase):
    def test_a_flood_is_slowed_not_cut(self) -> None:
        server = MemoryServer(rate=2.0, burst=3)
        self.addCleanup(server.stop)
        mary = server.connect()
        mary.send_json({"CMD": "JOIN", "UN": "Mary", "UID": "mary", "V": 2})
        mary.take()
        alice = IrcClient(server)
        self.addCleanup(alice.lose)
        alice.send("NICK alice", "USER alice 0 * :A")
        alice.take()
        mary.take()
        alice.send(*[f"PRIVMSG #general :{n}" for n in range(10)])
        self.assertEqual(len(mary.take()), 1)  # the burst's last token
        received = []
        for _ in range(10):
            server.clock.advance(0.5)
            received += [m["MSG"] for m in mary.take()]
        self.assertEqual(received, [str(n) for n in range(1, 10)])


class TimeoutTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = MemoryServer(rate=None, join_timeout=30)
        self.addCleanup(self.server.stop)
        self.client = IrcClient(self.server)
        self.addCleanup(self.client.lose)

    def test_registration_in_time(self) -> None:
        self.client.send("NICK alice")
        self.server.clock.advance(30)
        self.assertEqual(
            self.client.take(),
            ["ERROR :Closing Link: 127.0.0.1:50001 (Registration timed out)"],
        )
        self.assertTrue(self.client.transport.disconnecting)

    def test_silence_is_pinged_then_closed(self) -> None:
        client = self.client
        client.register("alice")
        self.server.clock.advance(peer.PING_AFTER)
        self.assertEqual(client.take(), ["PING :muca"])
        client.send("PONG :muca")
        self.server.clock.advance(peer.PING_AFTER - 1)
        self.assertEqual(client.take(), [])
        self.server.clock.advance(1)
        self.assertEqual(client.take(), ["PING :muca"])
        self.server.clock.advance(peer.PING_WAIT)
        self.assertEqual(
            client.take(), ["ERROR :Closing Link: 127.0.0.1:50001 (Ping timeout)"]
        )
        self.assertTrue(client.transport.disconnecting)

    def test_server_full(self) -> None:
        server = MemoryServer(rate=None, max_connections=1)
        self.addCleanup(server.stop)
        first = IrcClient(server)
        self.addCleanup(first.lose)
        second = IrcClient(server)
        self.addCleanup(second.lose)
        second.send("NICK bob")
        lines = second.take()
        self.assertEqual(codes(lines), ["ERROR"])
        self.assertIn("Closing Link", lines[0])
        self.assertTrue(second.transport.disconnecting)


class TargetTests(SynchronousTestCase):
    def test_too_many_targets(self) -> None:
        server = MemoryServer(rate=None)
        self.addCleanup(server.stop)
        peers = []
        for n in range(6):
            peer = server.connect()
            peer.send_json({"CMD": "JOIN", "UN": f"u{n}", "UID": f"u{n}", "V": 2})
            peers.append(peer)
        alice = IrcClient(server)
        self.addCleanup(alice.lose)
        lines = alice.register("alice")
        self.assertIn("TARGMAX=PRIVMSG:4,NOTICE:4,JOIN:10,PART:10,NAMES:10", lines[4])
        for peer in peers:
            peer.take()
        alice.send("PRIVMSG u0,u1,u2,u3,u4,u5 :hi")
        self.assertEqual(alice.take(), [":muca 407 alice u4 :Too many targets"])
        got = [[m["MSG"] for m in peer.take() if m["CMD"] == "MSG"] for peer in peers]
        self.assertEqual(got, [["hi"]] * 4 + [[], []])
        alice.send("JOIN " + ",".join(f"#r{n}" for n in range(12)))
        lines = alice.take()
        self.assertEqual(lines.count(":muca 407 alice #r10 :Too many targets"), 1)
        self.assertEqual(sum(1 for line in lines if " JOIN :#r" in line), 10)


class ShutdownTests(SynchronousTestCase):
    def test_the_server_stopping_is_said(self) -> None:
        server = MemoryServer(rate=None)
        self.addCleanup(server.stop)
        alice = IrcClient(server)
        self.addCleanup(alice.lose)
        alice.register("alice")
        server.factory.close_all()
        self.assertEqual(
            alice.take(),
            ["ERROR :Closing Link: 127.0.0.1:50001 (the server is shutting down)"],
        )
        self.assertTrue(alice.transport.disconnecting)


class SlowReaderTests(SynchronousTestCase):
    def test_a_slow_reader_is_told_in_irc(self) -> None:
        server = MemoryServer(rate=None, max_outbound=1000)
        self.addCleanup(server.stop)
        alice = IrcClient(server)
        self.addCleanup(alice.lose)
        alice.register("alice")
        mary = server.connect()
        mary.send_json({"CMD": "JOIN", "UN": "Mary", "UID": "mary", "V": 2})
        mary.take()
        alice.take()
        alice.protocol.pauseProducing()  # its socket is full
        for n in range(20):
            mary.send_json(
                {"CMD": "SEND", "MSG": f"{n:02d}" + "x" * 100, "TO": [], "FROM": "mary"}
            )
            server.clock.advance(0)
        lines = alice.take()
        self.assertTrue(
            all(line.startswith(":Mary!mary@muca PRIVMSG") for line in lines[:-1])
        )
        self.assertEqual(
            lines[-1],
            "ERROR :Closing Link: 127.0.0.1:50001"
            " (you did not read fast enough; disconnecting)",
        )
        self.assertTrue(alice.transport.disconnecting)


class EchoedWordsTests(SynchronousTestCase):
    def test_a_clients_words_never_shift_a_reply(self) -> None:
        server = MemoryServer(rate=None)
        self.addCleanup(server.stop)
        alice = IrcClient(server)
        self.addCleanup(alice.lose)
        alice.register("alice")
        alice.send("WHOIS :", "JOIN ::x", "NAMES :a b")
        self.assertEqual(
            alice.take(),
            [
                ":muca 401 alice * :No such nick/channel",
                ":muca 318 alice * :End of /WHOIS list.",
                ":muca 403 alice *:x :No such channel",
                ":muca 366 alice a_b :End of /NAMES list.",
            ],
        )
