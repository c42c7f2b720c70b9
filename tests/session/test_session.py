"""The session layer on its own: a front-end that is nothing but a
recording :class:`IChatClient`, logged in through the node's portal, sees
the same ACKs, rosters, messages and errors as a TCP peer would."""

from __future__ import annotations

import json
from typing import Any

from twisted.cred import checkers, strcred
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from muca.protocol import messages
from muca.protocol.messages import History, Join, JoinRefused, Send
from muca.protocol.wire import Framing
from muca.server.addresses import describe_address
from muca.server.auth import make_portal
from muca.session.interfaces import IChatClient, IChatUser
from muca.session.realm import AnonymousChecker, ChatRealm, ClaimedId
from muca.session.user import ChatUser
from tests.support import OKAY, MemoryServer, join, roster, strip_ts

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")


@implementer(IChatClient)
class RecordingClient:
    """A front-end with no wire: what the session and the node say to its
    peer, as the objects a native client would read, in order."""

    framing = Framing.NATIVE

    def __init__(self, name: str = "test:1") -> None:
        self.peer = name
        self.address: str | None = None
        self.seen: list[dict[str, Any]] = []

    def welcome(self, join: Join) -> None:
        self.seen.append(messages.ack_okay_payload())

    def refuse(self, uid: str, nickname: str, refusal: JoinRefused) -> None:
        self.seen.append(messages.ack_fail_payload(refusal.code, refusal.reason))

    def send(self, obj: dict[str, Any]) -> None:
        self.seen.append(obj)

    def send_many(self, objs: list[dict[str, Any]]) -> int:
        self.seen.extend(objs)
        return 0

    def send_error(self, code: str, reason: str, ref: str | None = None) -> None:
        self.send(messages.error_payload(code, reason, ref))

    def accepted(self, message: messages.ChatMessage) -> None:
        """Its own message accepted: a MUCA peer is told nothing."""

    def write_now(self, data: bytes) -> None:
        self.seen.extend(json.loads(line) for line in data.splitlines() if line)

    def stream(self, source: Any) -> None:
        last = False
        while not last:
            objs, last = self.successResultOf(source.next_page())  # type: ignore[attr-defined]
            self.seen.extend(objs)

    def hold_bytes(self, count: int) -> None:
        """Nothing is held: this client reads everything at once."""

    def charge_answer(self, size: int) -> None:
        """No rate limit here."""

    def close(self, grace: float | None = None) -> None:
        self.seen.append({"CLOSED": True})


class SessionTestCase(SynchronousTestCase):
    """A node on a fake clock, and users logged in through its portal."""

    portal_checkers: list[Any] = []

    def setUp(self) -> None:
        portal = make_portal(self.portal_checkers)
        self.server = MemoryServer(portal=portal, rate=None)
        self.addCleanup(self.server.stop)

    def log_in(
        self, who: tuple[str, str], password: str | None = None
    ) -> tuple[RecordingClient, Any]:
        """A login as ``who``: the client, and the (user, logout) or None."""
        client = RecordingClient(f"test:{who[0]}")
        attempt = Join(who[0], who[1], password=password)
        result = self.successResultOf(
            self.server.factory.entrance.log_in(client, attempt)
        )
        return client, result

    def joined(self, who: tuple[str, str]) -> tuple[RecordingClient, Any, Any]:
        """Logged in and joined, its first LIST read."""
        client, (user, logout) = self.log_in(who)
        self.successResultOf(user.join(Join(*who)))
        self.take(client)
        return client, user, logout

    def take(self, client: RecordingClient) -> list[dict[str, Any]]:
        """End the reactor turn; what ``client`` saw since last time."""
        self.server.clock.advance(0)
        seen, client.seen = client.seen, []
        return [strip_ts(obj) for obj in seen]


class AnonymousSessionTests(SessionTestCase):
    """Without ``--auth``: the claimed user id is taken as it is."""

    def test_the_realm_hands_back_a_user_bound_to_the_client(self) -> None:
        client, (user, _) = self.log_in(TONY)
        self.assertTrue(verifyObject(IChatUser, user))
        self.assertTrue(verifyObject(IChatClient, client))
        self.assertEqual((user.uid, user.member), (TONY[1], None))

    def test_a_join_is_welcomed_then_listed(self) -> None:
        client, (user, _) = self.log_in(TONY)
        self.successResultOf(user.join(Join(*TONY)))
        self.assertEqual(self.take(client), [OKAY, roster(TONY)])

    def test_a_password_is_not_looked_at(self) -> None:
        client, login = self.log_in(TONY, password="anything")
        self.assertIsNotNone(login)
        self.assertEqual(client.seen, [])

    def test_logging_out_leaves_the_room(self) -> None:
        mary, _, _ = self.joined(MARY)
        _, _, logout = self.joined(TONY)
        self.assertEqual(self.take(mary), [roster(MARY, TONY)])
        logout()
        logout()  # twice changes nothing
        self.assertEqual(self.take(mary), [roster(MARY)])

    def test_a_message_reaches_the_other_user(self) -> None:
        mary, _, _ = self.joined(MARY)
        tony, user, _ = self.joined(TONY)
        self.take(mary)
        user.send(Send("hello", (MARY[1],), TONY[1]))
        self.assertEqual(
            self.take(mary),
            [
                {
                    "CMD": "MSG",
                    "TYPE": "PRIVATE",
                    "MSG": "hello",
                    "FROM": TONY[1],
                }
            ],
        )
        self.assertEqual(self.take(tony), [])

    def test_sending_as_another_user_id_is_refused(self) -> None:
        mary, _, _ = self.joined(MARY)
        tony, user, _ = self.joined(TONY)
        self.take(mary)
        user.send(Send("not me", (), MARY[1]))
        (error,) = self.take(tony)
        self.assertEqual((error["CODE"], error["REF"]), ("FROM_MISMATCH", "SEND"))
        self.assertEqual(self.take(mary), [])

    def test_send_and_history_before_the_join_are_not_joined(self) -> None:
        client, (user, _) = self.log_in(TONY)
        user.send(Send("too soon", (), TONY[1]))
        user.history(History(before=10, limit=5))
        self.assertEqual(
            [(e["CMD"], e["CODE"], e["REF"]) for e in self.take(client)],
            [("ERROR", "NOT_JOINED", "SEND"), ("ERROR", "NOT_JOINED", "HISTORY")],
        )

    def test_a_second_join_is_already_joined(self) -> None:
        client, user, _ = self.joined(TONY)
        self.successResultOf(user.join(Join("Tony2", TONY[1])))
        (refusal,) = self.take(client)
        self.assertEqual((refusal["TYPE"], refusal["CODE"]), ("FAIL", "ALREADY_JOINED"))

    def test_a_taken_nickname_is_refused_and_the_user_may_try_again(self) -> None:
        self.joined(MARY)
        client, (user, _) = self.log_in(TONY)
        self.successResultOf(user.join(Join(MARY[0], TONY[1])))
        (refusal,) = self.take(client)
        self.assertEqual((refusal["TYPE"], refusal["CODE"]), ("FAIL", "NICK_TAKEN"))
        self.successResultOf(user.join(Join(*TONY)))
        self.assertEqual(self.take(client), [OKAY, roster(MARY, TONY)])


class PasswordSessionTests(SessionTestCase):
    """With ``--auth``: the same portal, the password checked."""

    portal_checkers = [strcred.makeChecker("memory:tony@hku.hk:pw")]

    def test_the_right_password_logs_in(self) -> None:
        client, login = self.log_in(TONY, password="pw")
        self.assertIsNotNone(login)
        self.assertEqual(login[0].uid, TONY[1])
        self.assertEqual(client.seen, [])

    def test_a_wrong_or_missing_password_is_auth_failed(self) -> None:
        for who, password in ((TONY, "wrong"), (MARY, None)):
            client, login = self.log_in(who, password=password)
            self.assertIsNone(login)
            self.assertEqual(
                [(a["CMD"], a["TYPE"], a["CODE"]) for a in client.seen],
                [("ACK", "FAIL", "AUTH_FAILED")],
                password,
            )

    def test_a_failed_login_slows_the_next_refusal_not_a_right_password(
        self,
    ) -> None:
        self.log_in(TONY, password="wrong")
        client = RecordingClient()
        refused = self.server.factory.entrance.log_in(
            client, Join(*TONY, password="wrong again")
        )
        self.assertNoResult(refused)
        self.assertEqual(client.seen, [])
        self.server.clock.advance(self.server.factory.logins.first)
        self.assertIsNone(self.successResultOf(refused))
        self.assertEqual(len(client.seen), 1)
        right = self.server.factory.entrance.log_in(
            RecordingClient(), Join(*TONY, password="pw")
        )
        self.assertIsNotNone(self.successResultOf(right))

    def test_a_login_given_up_during_its_wait_says_nothing(self) -> None:
        self.log_in(TONY, password="wrong")
        client = RecordingClient()
        waiting = self.server.factory.entrance.log_in(
            client, Join(*TONY, password="wrong")
        )
        waiting.cancel()
        self.assertIsNone(self.successResultOf(waiting))
        self.assertEqual(self.server.clock.getDelayedCalls(), [])
        self.assertEqual(client.seen, [])


class LaterNode:
    """A node whose joins are decided later (as a cluster's registry does)."""

    def __init__(self) -> None:
        self.pending: list[Deferred[Any]] = []
        self.left: list[Any] = []
        self.welcomed: list[Any] = []

    def join(self, client: Any, join: Join) -> Deferred[Any]:
        decided: Deferred[Any] = Deferred()
        self.pending.append(decided)
        return decided

    def joined(self, member: Any, join: Join) -> None:
        self.welcomed.append(member)

    def leave(self, member: Any, peer: str) -> None:
        self.left.append(member)


class LaterJoinTests(SynchronousTestCase):
    """A join the node decides later, and a user that leaves meanwhile."""

    def setUp(self) -> None:
        self.node = LaterNode()
        self.client = RecordingClient()
        self.user = ChatUser(self.node, TONY[1], self.client)  # type: ignore[arg-type]

    def test_the_client_is_welcomed_once_the_node_decides(self) -> None:
        decided = self.user.join(Join(*TONY))
        self.assertNoResult(decided)
        self.assertEqual(self.client.seen, [])
        self.node.pending[0].callback("member")
        self.successResultOf(decided)
        self.assertEqual(self.client.seen, [OKAY])
        self.assertEqual((self.user.member, self.node.welcomed), ("member", ["member"]))

    def test_a_user_gone_before_the_answer_leaves_again_unheard(self) -> None:
        decided = self.user.join(Join(*TONY))
        self.user.leave()
        self.node.pending[0].callback("member")
        self.successResultOf(decided)
        self.assertEqual(self.client.seen, [])
        self.assertEqual(self.node.left, ["member"])
        self.assertEqual(self.node.welcomed, [])

    def test_a_join_while_one_is_decided_is_already_joined(self) -> None:
        self.user.join(Join(*TONY))
        self.user.join(Join(*TONY))
        self.assertEqual(
            [(a["TYPE"], a["CODE"]) for a in self.client.seen],
            [("FAIL", "ALREADY_JOINED")],
        )

    def test_a_node_that_breaks_refuses_the_join(self) -> None:
        decided = self.user.join(Join(*TONY))
        self.node.pending[0].errback(RuntimeError("registry on fire"))
        self.successResultOf(decided)
        self.assertEqual(
            [(a["TYPE"], a["CODE"]) for a in self.client.seen],
            [("FAIL", "SERVER_FULL")],
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class RealmTests(SynchronousTestCase):
    """The realm and the anonymous checker as twisted.cred sees them."""

    def test_the_realm_knows_only_chat_users(self) -> None:
        realm = ChatRealm(LaterNode())  # type: ignore[arg-type]
        with self.assertRaises(NotImplementedError):
            realm.requestAvatar("tony@hku.hk", RecordingClient(), object)

    def test_a_bytes_avatar_id_becomes_a_str_user_id(self) -> None:
        realm = ChatRealm(LaterNode())  # type: ignore[arg-type]
        _, user, _ = realm.requestAvatar(b"tony@hku.hk", RecordingClient(), IChatUser)
        self.assertEqual(user.uid, "tony@hku.hk")

    def test_the_anonymous_checker_takes_the_claimed_id(self) -> None:
        checker = AnonymousChecker()
        self.assertTrue(verifyObject(checkers.ICredentialsChecker, checker))
        found = checker.requestAvatarId(ClaimedId("tony@hku.hk"))
        self.assertEqual(self.successResultOf(found), "tony@hku.hk")


class AddressTests(SynchronousTestCase):
    """One way to name a peer in logs."""

    def test_addresses(self) -> None:
        cases = [
            (IPv4Address("TCP", "10.0.0.1", 5000), "10.0.0.1:5000"),
            (IPv6Address("TCP", "::1", 5000), "[::1]:5000"),
            (UNIXAddress(b"/run/muca.sock"), "/run/muca.sock"),
            (UNIXAddress(None), "local"),
        ]
        for address, text in cases:
            self.assertEqual(describe_address(address), text)

    def test_an_ipv6_peer_is_bracketed_in_the_log(self) -> None:
        server = MemoryServer(capacity=0)
        self.addCleanup(server.stop)
        address = IPv6Address("TCP", "2001:db8::7", 4242)
        protocol = server.factory.buildProtocol(address)
        protocol.makeConnection(StringTransport(peerAddress=address))
        with capturedLogs() as events:
            protocol.dataReceived(json.dumps(join(*TONY)).encode() + b"\n")
        logged = [formatEvent(event) for event in events]
        self.assertTrue(
            any("from [2001:db8::7]:4242" in line for line in logged), logged
        )
