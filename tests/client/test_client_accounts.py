"""Accounts with ChatClient on a real ``twistd -n muca --auth db --register
invite`` (SQLite): an account made with an invitation from ``muca-admin
invite create`` and joined with, each refusal as a readable error with the
server's code, and a password changed and logged in with."""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from muca.client import (
    AccountRefused,
    ChatClient,
    ClientError,
    ConnectionClosed,
    NotConnected,
)
from muca.protocol.messages import AUTH_FAILED, JoinRefused
from tests.support.accounts import AccountsCase, SQLiteAccounts
from tests.support.client import RecordingObserver, listen_loopback
from tests.support.twistd import fresh_directory, start_twistd

SECRET = "correct horse battery"
RULE = (
    "a password needs at least 8 characters (at most 1024) and must not be the user id"
)


class HangsUp(Protocol):
    """A server that closes the connection on whatever it reads."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.loseConnection()


class ClientAccountsTests(SQLiteAccounts, AccountsCase, TestCase):
    async def setUp(self) -> None:
        SQLiteAccounts.setUp(self)
        self.twistd = await self.server("--register", "invite")

    async def chat(self, uid: str, port: int | None = None) -> ChatClient:
        """A ChatClient of ``uid``, connected, not joined."""
        client = ChatClient(
            reactor, uid.split("@")[0].title(), uid, RecordingObserver()
        )
        self.addCleanup(client.leave)
        await client.connect_tcp("127.0.0.1", port or self.twistd.port)
        return client

    async def refusal(self, client: ChatClient, *args: str) -> AccountRefused:
        with self.assertRaises(AccountRefused) as raised:
            await client.register(*args)
        return raised.exception

    async def test_an_invitation_makes_an_account_that_joins(self) -> None:
        code = (await self.admin("invite", "create")).strip()
        ann = await self.chat("ann@hku.hk")
        self.assertIsNone(await ann.register(SECRET, code))
        # The same connection joins with it.
        await ann.join(SECRET)
        self.assertTrue(ann.joined)
        # Another connection with a wrong password does not.
        other = await self.chat("ann@hku.hk")
        with self.assertRaises(JoinRefused) as raised:
            await other.join("not the password")
        self.assertEqual(raised.exception.code, AUTH_FAILED)

    async def test_refusals_carry_the_code_and_the_reason(self) -> None:
        code = (await self.admin("invite", "create", "--uses", "3")).strip()
        ann = await self.chat("ann@hku.hk")
        weak = await self.refusal(ann, "short", code)
        self.assertEqual((weak.code, weak.ref), ("WEAK_PASSWORD", "REGISTER"))
        self.assertEqual(
            str(weak), f"cannot create the account: too short: {RULE} (WEAK_PASSWORD)"
        )
        bad = await self.refusal(ann, SECRET, "no-such-code")
        self.assertEqual(
            str(bad),
            "cannot create the account: this invitation code is unknown, used up,"
            " expired or revoked (BAD_INVITE)",
        )
        missing = await self.refusal(ann, SECRET)
        self.assertEqual(missing.code, "BAD_INVITE")
        await ann.register(SECRET, code)
        again = await self.chat("ann@hku.hk")
        taken = await self.refusal(again, "another password", code)
        self.assertEqual(
            str(taken),
            "cannot create the account: this user id has an account already"
            " (UID_TAKEN)",
        )

    async def test_a_closed_server_refuses_registration(self) -> None:
        # A server of its own: an SQLite file is one server's.
        db = os.path.join(fresh_directory(self), "closed.db")
        closed = await start_twistd(
            self, "--auth", "db", "--db", db, "--register", "closed"
        )
        ann = await self.chat("ann@hku.hk", port=closed.port)
        refused = await self.refusal(ann, SECRET)
        self.assertEqual(
            str(refused),
            "cannot create the account: this server takes no new accounts: ask"
            " its admin for one (REGISTRATION_CLOSED)",
        )

    async def test_register_needs_a_connection_that_has_not_joined(self) -> None:
        ann = ChatClient(reactor, "Ann", "ann@hku.hk")
        with self.assertRaises(NotConnected):
            await ann.register(SECRET)
        await self.admin("user", "add", "ann@hku.hk", stdin=SECRET + "\n")
        ann = await self.chat("ann@hku.hk")
        await ann.join(SECRET)
        with self.assertRaises(ClientError) as raised:
            await ann.register(SECRET)
        self.assertEqual(
            str(raised.exception), "already joined: an account is made before joining"
        )

    async def test_a_changed_password_is_the_one_that_joins(self) -> None:
        await self.admin("user", "add", "ann@hku.hk", stdin=SECRET + "\n")
        ann = await self.chat("ann@hku.hk")
        with self.assertRaises(NotConnected):
            await ann.change_password(SECRET, "a new password")
        await ann.join(SECRET)
        with self.assertRaises(AccountRefused) as raised:
            await ann.change_password("not it at all", "a new password")
        self.assertEqual(
            str(raised.exception),
            "cannot change the password: OLD is not your password (AUTH_FAILED)",
        )
        with self.assertRaises(AccountRefused) as raised:
            await ann.change_password(SECRET, "ann@hku.hk")
        self.assertEqual(raised.exception.code, "WEAK_PASSWORD")
        self.assertIsNone(await ann.change_password(SECRET, "a new password"))
        await ann.leave()
        again = await self.chat("ann@hku.hk")
        with self.assertRaises(JoinRefused):
            await again.join(SECRET)
        again = await self.chat("ann@hku.hk")
        await again.join("a new password")
        self.assertTrue(again.joined)

    async def test_a_connection_closed_before_the_answer_fails_the_wait(
        self,
    ) -> None:
        port = await listen_loopback(self, Factory.forProtocol(HangsUp))
        ann = await self.chat("ann@hku.hk", port=port)
        with self.assertRaises(ConnectionClosed) as raised:
            await ann.register(SECRET, "code")
        self.assertEqual(
            str(raised.exception),
            "connection closed before REGISTER was answered:"
            " the server closed the connection",
        )
