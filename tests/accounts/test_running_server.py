"""``muca-admin`` against a running ``twistd -n muca --auth db``, on SQLite
and on a real PostgreSQL: a disabled account's user is disconnected within
5 s (the others see it leave) and cannot join again until it is enabled; a
new role takes effect within 5 s (an admin may create rooms under
``--create-rooms admins``)."""

from __future__ import annotations

import time

from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from tests.support import OKAY, join, roster
from tests.support.accounts import AccountsCase, PostgresAccounts, SQLiteAccounts

SECRET = "correct horse battery"
ANN = ("Ann", "ann@hku.hk")
BOB = ("Bob", "bob@hku.hk")
#: Seconds within which a running server must show muca-admin's change.
NOTICED_WITHIN = 5.0


class RunningServerBehaviour(AccountsCase):
    """Mixed into one TestCase per database."""

    async def test_a_disabled_user_is_disconnected_and_cannot_join(self) -> None:
        for uid in (ANN[1], BOB[1]):
            await self.admin("user", "add", uid, stdin=SECRET)
        server = await self.server()
        ann, bob = await self.client(server.port), await self.client(server.port)
        ann.send_json(join(*ANN, PASS=SECRET))
        await ann.next_objects(2)
        bob.send_json(join(*BOB, PASS=SECRET))
        self.assertEqual(await bob.next_objects(2), [OKAY, roster(ANN, BOB)])
        await ann.next_object()
        asked = time.monotonic()
        await self.admin("user", "disable", BOB[1])
        self.assertEqual(
            await bob.next_object(timeout=NOTICED_WITHIN + 2),
            {
                "CMD": "ERROR",
                "CODE": "ACCOUNT_DISABLED",
                "REASON": "your account has been disabled by the server's admin",
            },
        )
        await bob.closed()
        self.assertLess(time.monotonic() - asked, NOTICED_WITHIN)
        self.assertEqual(await ann.next_object(), roster(ANN))
        again = await self.client(server.port)
        again.send_json(join(*BOB, PASS=SECRET))
        self.assertEqual(
            await again.next_object(),
            {
                "CMD": "ACK",
                "TYPE": "FAIL",
                "CODE": "ACCOUNT_DISABLED",
                "REASON": "this account is disabled by the server's admin",
            },
        )
        await self.admin("user", "enable", BOB[1])
        again.send_json(join(*BOB, PASS=SECRET))
        self.assertEqual(await again.next_object(), OKAY)
        self.assertIn("'bob@hku.hk' is disabled: disconnected", server.process.output)

    async def test_a_new_role_takes_effect_within_seconds(self) -> None:
        await self.admin("user", "add", ANN[1], stdin=SECRET)
        server = await self.server("--create-rooms", "admins")
        ann = await self.client(server.port)
        ann.send_json(join(*ANN, PASS=SECRET, V=2, CAPS=["rooms"]))
        await ann.next_objects(3)  # ACK, ROOMS, LIST
        ann.send_json({"CMD": "ENTER", "ROOM": "maths"})
        self.assertEqual((await ann.next_object())["CODE"], "NO_SUCH_ROOM")
        asked = time.monotonic()
        await self.admin("user", "role", ANN[1], "admin")
        while True:
            ann.send_json({"CMD": "ENTER", "ROOM": "maths"})
            answer = await ann.next_object()
            if answer["CMD"] == "ENTERED":
                break
            self.assertEqual(answer["CODE"], "NO_SUCH_ROOM")
            self.assertLess(time.monotonic() - asked, NOTICED_WITHIN)
            await task.deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(answer, {"CMD": "ENTERED", "ROOM": "maths", "TOPIC": ""})
        self.assertLess(time.monotonic() - asked, NOTICED_WITHIN)


class SQLiteRunningServerTests(SQLiteAccounts, RunningServerBehaviour, TestCase):
    """On an SQLite file the server and muca-admin share."""


class PostgresRunningServerTests(PostgresAccounts, RunningServerBehaviour, TestCase):
    """On a real PostgreSQL the server and muca-admin share."""
