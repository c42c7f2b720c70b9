"""Registering an IRC client: NICK, USER, PASS, CAP; the welcome
numerics and the default room as #general."""

from __future__ import annotations

import base64

from twisted.trial.unittest import SynchronousTestCase

from muca.server.auth import make_checker, make_portal
from tests.irc.support import IrcClient, codes
from tests.support import MemoryServer

WELCOME = ["001", "002", "003", "004", "005", "375", "372", "376"]
GENERAL = ["JOIN", "331", "353", "366"]


class RegistrationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = MemoryServer(rate=None)
        self.addCleanup(self.server.stop)

    def client(self) -> IrcClient:
        client = IrcClient(self.server)
        self.addCleanup(client.lose)
        return client

    def test_welcome_then_general(self) -> None:
        lines = self.client().register("alice")
        self.assertEqual(codes(lines), WELCOME + GENERAL)
        self.assertEqual(
            lines[0], ":muca 001 alice :Welcome to the MUCA chat, alice!alice@muca"
        )
        isupport = lines[4].split(" ")
        for token in (
            "CHANTYPES=#",
            "CASEMAPPING=rfc1459",
            "NICKLEN=30",
            "CHANNELLEN=33",
            "PREFIX=(o)@",
        ):
            self.assertIn(token, isupport)
        self.assertEqual(
            lines[-4:],
            [
                ":alice!alice@muca JOIN :#general",
                ":muca 331 alice #general :No topic is set",
                ":muca 353 alice = #general :alice",
                ":muca 366 alice #general :End of /NAMES list.",
            ],
        )

    def test_user_first_then_nick(self) -> None:
        client = self.client()
        client.send("USER bob 0 * :Bob B")
        self.assertEqual(client.take(), [])
        client.send("NICK bob")
        self.assertEqual(codes(client.take()), WELCOME + GENERAL)

    def test_a_muca_user_sees_the_irc_user(self) -> None:
        muca = self.server.connect()
        muca.send_json({"CMD": "JOIN", "UN": "Mary", "UID": "mary", "V": 2})
        muca.take()
        lines = self.client().register("alice")
        self.assertIn(":muca 353 alice = #general :Mary alice", lines)
        self.assertEqual(
            muca.take(),
            [
                {
                    "CMD": "LIST",
                    "DATA": [
                        {"UN": "Mary", "UID": "mary"},
                        {"UN": "alice", "UID": "alice"},
                    ],
                }
            ],
        )

    def test_commands_before_registration(self) -> None:
        client = self.client()
        client.send("JOIN #general", "PRIVMSG #general :hi")
        self.assertEqual(
            client.take(),
            [
                ":muca 451 * :You have not registered",
                ":muca 451 * :You have not registered",
            ],
        )

    def test_ping_before_registration(self) -> None:
        client = self.client()
        client.send("PING :abc", "PING")
        self.assertEqual(
            client.take(),
            [":muca PONG muca :abc", ":muca 409 * :No origin specified"],
        )

    def test_missing_parameters(self) -> None:
        client = self.client()
        client.send("USER bob", "NICK", "CAP")
        self.assertEqual(
            client.take(),
            [
                ":muca 461 * USER :Not enough parameters",
                ":muca 431 * :No nickname given",
                ":muca 461 * CAP :Not enough parameters",
            ],
        )

    def test_erroneous_nick(self) -> None:
        client = self.client()
        client.send("NICK 9lives", "NICK a" + "b" * 30, "NICK no.dots")
        self.assertEqual(codes(client.take()), ["432", "432", "432"])
        # The reserved MUCA nickname is refused by the MUCA join's rules.
        lines = client.register("ALL")
        self.assertEqual(codes(lines), ["432"])
        self.assertTrue(lines[0].startswith(":muca 432 * ALL :Erroneous nickname"))
        client.send("NICK alice")
        self.assertEqual(codes(client.take()), WELCOME + GENERAL)

    def test_nick_in_use(self) -> None:
        self.client().register("alice")
        client = self.client()
        lines = client.register("alice")
        self.assertEqual(codes(lines), ["433"])
        self.assertTrue(lines[0].startswith(":muca 433 * alice :Nickname is already"))
        client.send("NICK alice2")
        self.assertEqual(codes(client.take()), WELCOME + GENERAL)

    def test_no_reregistration(self) -> None:
        client = self.client()
        client.register("alice")
        client.send("USER x 0 * :x", "PASS secret", "NICK other")
        self.assertEqual(codes(client.take()), ["462", "462", "447"])

    def test_unknown_command(self) -> None:
        client = self.client()
        client.register("alice")
        client.send("FROB x y")
        self.assertEqual(client.take(), [":muca 421 alice FROB :Unknown command"])


class CapabilityTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = MemoryServer(rate=None)
        self.addCleanup(self.server.stop)
        self.client = IrcClient(self.server)
        self.addCleanup(self.client.lose)

    def test_negotiation_holds_registration(self) -> None:
        client = self.client
        client.send("CAP LS 302", "NICK alice", "USER alice 0 * :A")
        self.assertEqual(
            client.take(),
            [":muca CAP * LS :server-time message-tags echo-message batch"],
        )
        client.send("CAP REQ :server-time echo-message", "CAP REQ :sasl multi-prefix")
        self.assertEqual(
            client.take(),
            [
                ":muca CAP * ACK :server-time echo-message",
                ":muca CAP * NAK :sasl multi-prefix",
            ],
        )
        client.send("CAP LIST", "CAP END")
        lines = client.take()
        self.assertEqual(lines[0], ":muca CAP * LIST :echo-message server-time")
        self.assertEqual(codes(lines[1:]), WELCOME + GENERAL)
        client.send("CAP REQ :-echo-message", "CAP LIST", "CAP FROB")
        self.assertEqual(
            client.take(),
            [
                ":muca CAP alice ACK :-echo-message",
                ":muca CAP alice LIST :server-time",
                ":muca 410 alice FROB :Invalid CAP command",
            ],
        )


class PasswordTests(SynchronousTestCase):
    def setUp(self) -> None:
        portal = make_portal([make_checker("memory:alice:sesame")])
        self.server = MemoryServer(portal=portal, rate=None, login_delay=None)
        self.addCleanup(self.server.stop)

    def test_right_password(self) -> None:
        client = IrcClient(self.server)
        self.addCleanup(client.lose)
        self.assertEqual(
            codes(client.register("alice", "PASS sesame")), WELCOME + GENERAL
        )

    def test_wrong_or_missing_password(self) -> None:
        for extra in (("PASS wrong",), ()):
            client = IrcClient(self.server)
            self.addCleanup(client.lose)
            lines = client.register("alice", *extra)
            self.assertEqual(codes(lines), ["464", "ERROR"])
            self.assertEqual(lines[0], ":muca 464 * :Password incorrect")
            self.assertTrue(lines[1].startswith("ERROR :Closing Link: 127.0.0.1:"))
            self.assertTrue(client.transport.disconnecting)


def plain(authzid: str, account: str, password: str) -> str:
    """An ``AUTHENTICATE`` PLAIN response."""
    raw = f"{authzid}\0{account}\0{password}".encode()
    return base64.b64encode(raw).decode()


class SaslTests(SynchronousTestCase):
    def setUp(self) -> None:
        checker = make_checker("memory:alice@hku.hk:sesame")
        self.server = MemoryServer(
            portal=make_portal([checker]), rate=None, login_delay=None
        )
        self.addCleanup(self.server.stop)
        self.client = IrcClient(self.server)
        self.addCleanup(self.client.lose)
        self.client.send("CAP LS 302", "NICK Alice", "USER alice 0 * :Alice A")
        self.assertEqual(
            self.client.take(),
            [":muca CAP * LS :server-time message-tags echo-message batch sasl=PLAIN"],
        )
        self.client.send("CAP REQ :sasl")
        self.assertEqual(self.client.take(), [":muca CAP * ACK :sasl"])

    def test_plain_then_cap_end(self) -> None:
        mary = self.server.connect()
        client = self.client
        client.send("AUTHENTICATE PLAIN")
        self.assertEqual(client.take(), ["AUTHENTICATE +"])
        client.send("AUTHENTICATE " + plain("", "alice@hku.hk", "sesame"))
        self.assertEqual(
            client.take(),
            [
                ":muca 900 Alice Alice!alice@muca alice@hku.hk"
                " :You are now logged in as alice@hku.hk",
                ":muca 903 Alice :SASL authentication successful",
            ],
        )
        client.send("CAP END")
        self.assertEqual(codes(client.take()), WELCOME + GENERAL)
        # The MUCA user is the account, named by the nick.
        mary.send_json(
            {"CMD": "JOIN", "UN": "Mary", "UID": "mary", "V": 2, "PASS": "x"}
        )
        self.assertEqual(
            mary.take(),
            [
                {
                    "CMD": "ACK",
                    "TYPE": "FAIL",
                    "CODE": "AUTH_FAILED",
                    "REASON": "wrong or missing password",
                }
            ],
        )
        self.assertEqual(
            [m.uid for m in self.server.factory.room.members()], ["alice@hku.hk"]
        )

    def test_wrong_password_then_right(self) -> None:
        client = self.client
        client.send(
            "AUTHENTICATE PLAIN", "AUTHENTICATE " + plain("", "alice@hku.hk", "no")
        )
        self.assertEqual(
            client.take(),
            ["AUTHENTICATE +", ":muca 904 Alice :SASL authentication failed"],
        )
        client.send("AUTHENTICATE PLAIN")
        client.send("AUTHENTICATE " + plain("alice@hku.hk", "alice@hku.hk", "sesame"))
        self.assertEqual(codes(client.take()), ["AUTHENTICATE", "900", "903"])
        client.send("AUTHENTICATE PLAIN")
        self.assertEqual(codes(client.take()), ["907"])

    def test_bad_exchanges(self) -> None:
        client = self.client
        client.send(
            "AUTHENTICATE SCRAM-SHA-256", "AUTHENTICATE PLAIN", "AUTHENTICATE *"
        )
        self.assertEqual(
            client.take(),
            [
                ":muca 908 Alice PLAIN :are available SASL mechanisms",
                ":muca 904 Alice :SASL authentication failed",
                "AUTHENTICATE +",
                ":muca 906 Alice :SASL authentication aborted",
            ],
        )
        client.send("AUTHENTICATE PLAIN", *["AUTHENTICATE " + "A" * 400] * 5)
        self.assertEqual(codes(client.take()), ["AUTHENTICATE", "905"])
        client.send("AUTHENTICATE PLAIN", "AUTHENTICATE !!notbase64")
        self.assertEqual(codes(client.take()), ["AUTHENTICATE", "904"])


class NoSaslTests(SynchronousTestCase):
    def test_no_sasl_without_auth(self) -> None:
        server = MemoryServer(rate=None)
        self.addCleanup(server.stop)
        client = IrcClient(server)
        self.addCleanup(client.lose)
        client.send("CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
        self.assertEqual(
            client.take(),
            [
                ":muca CAP * LS :server-time message-tags echo-message batch",
                ":muca CAP * NAK :sasl",
                ":muca 904 * :SASL authentication failed: CAP REQ sasl first",
            ],
        )


class CaseMappingTests(SynchronousTestCase):
    def test_a_nick_only_case_apart_is_in_use(self) -> None:
        server = MemoryServer(rate=None)
        self.addCleanup(server.stop)
        first = IrcClient(server)
        self.addCleanup(first.lose)
        first.register("Alice[1]")
        second = IrcClient(server)
        self.addCleanup(second.lose)
        self.assertEqual(
            second.register("aLICE{1}"),
            [
                ":muca 433 * aLICE{1} :Nickname is already in use:"
                " IRC compares nicks without regard to case"
            ],
        )
        # A MUCA user's IRC form counts too.
        muca = server.connect()
        muca.send_json({"CMD": "JOIN", "UN": "Zoé B", "UID": "zoe@hku.hk", "V": 2})
        muca.take()
        second.send("NICK zo__b|ed60")
        self.assertEqual(codes(second.take()), ["433"])
