"""Failed logins slowed with ``--auth db``, on a fake clock: the node in
memory on a ``Clock``, over a real SQLite store and the real Argon2id
hashing threads (their answers arrive through the real reactor; the
refusals' delays run on the fake clock). A right password is never slowed;
wrong ones are refused later and later, per connection, user id and
address, up to the cap; a disabled account's right password is told so at
once; wrong invitation codes are slowed like wrong passwords."""

from __future__ import annotations

import os
import time
from typing import Any

from argon2 import PasswordHasher
from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from muca.accounts.desk import AccountChecker, Accounts, Registration
from muca.accounts.passwords import PasswordHashing
from muca.server.auth import make_portal
from muca.store.accounts import Account, read_audit, update_account
from muca.store.sqlite import SQLiteStore
from tests.support import OKAY, MemoryPeer, MemoryServer, join, until
from tests.support.twistd import fresh_directory

SECRET = "correct horse battery"
ANN = ("Ann", "ann@hku.hk")


class SlowdownTests(TestCase):
    async def start(self, registration: Registration) -> None:
        """A node on the fake clock with ``--auth db`` and ``--register
        registration``, over a real store holding ann's account."""
        self.store = SQLiteStore(os.path.join(fresh_directory(self), "muca.db"))
        await self.store.open()
        self.addCleanup(self.store.close)
        self.hashing = PasswordHashing()
        self.addCleanup(self.hashing.stop)
        self.accounts = Accounts(self.store, self.hashing, registration)
        encoded = await self.hashing.hash(SECRET)
        await self.store.register(Account(ANN[1], encoded, created=1), None, 1)
        self.server = MemoryServer(
            store=self.store,
            portal=make_portal([AccountChecker(self.accounts)]),
            accounts=self.accounts,
            rate=None,
            join_timeout=None,
        )
        self.addCleanup(self.server.stop)

    async def answer(self, peer: MemoryPeer) -> list[Any]:
        """What ``peer`` is told once the hashing threads have answered
        (the fake clock not moved): [] when a refusal waits on the clock."""
        clock = self.server.clock
        await until(
            lambda: peer.transport.value() or clock.getDelayedCalls(),
            30,
            "an answer or a refusal's timer",
        )
        return peer.take()

    async def test_wrong_passwords_are_refused_later_and_later_not_the_right_one(
        self,
    ) -> None:
        await self.start(Registration.OPEN)
        clock = self.server.clock
        guesser = self.server.connect("10.0.0.1")
        for n, wait in enumerate([0.0, 0.25, 0.5, 1.0, 2.0]):
            guesser.send_json(join(*ANN, PASS=f"guess {n}"))
            answer = await self.answer(guesser)
            if wait:
                self.assertEqual(answer, [])
                clock.advance(wait - 0.01)
                self.assertEqual(guesser.take(), [])
                clock.advance(0.01)
                answer = guesser.take()
            self.assertEqual(answer[0]["CODE"], "AUTH_FAILED", n)
        # The right password, from the guessing connection itself: in at
        # once, the clock not moved.
        guesser.send_json(join(*ANN, PASS=SECRET))
        self.assertEqual((await self.answer(guesser))[0], OKAY)
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_the_right_password_from_elsewhere_is_not_slowed(self) -> None:
        await self.start(Registration.OPEN)
        clock = self.server.clock
        guessers = [self.server.connect(f"10.0.1.{n}") for n in range(4)]
        for guesser in guessers:
            guesser.send_json(join(*ANN, PASS="a wrong guess"))
        await until(lambda: len(clock.getDelayedCalls()) == 3, 30, "three refusals")
        # Queued behind each other's refusals (the user id's): 0.25, 0.75, 1.75 s.
        waits = sorted(
            call.getTime() - clock.seconds() for call in clock.getDelayedCalls()
        )
        self.assertEqual(waits, [0.25, 0.75, 1.75])
        ann = self.server.connect("10.0.0.9")
        ann.send_json(join(*ANN, PASS=SECRET))
        await until(lambda: ann.transport.value(), 30, "ann's ACK")
        self.assertEqual(ann.take()[0], OKAY)
        clock.advance(1.75)
        for guesser in guessers:
            self.assertEqual(guesser.take()[0]["CODE"], "AUTH_FAILED")

    async def test_an_unknown_user_id_is_refused_as_a_wrong_password_is(self) -> None:
        await self.start(Registration.OPEN)
        timings = {}
        for uid in ("nobody@hku.hk", ANN[1]):
            peer = self.server.connect(f"10.0.2.{len(timings)}")
            started = time.monotonic()
            peer.send_json(join("Who", uid, PASS="a wrong guess"))
            (ack,) = await self.answer(peer)
            timings[uid] = time.monotonic() - started
            self.assertEqual(
                ack,
                {
                    "CMD": "ACK",
                    "TYPE": "FAIL",
                    "CODE": "AUTH_FAILED",
                    "REASON": "wrong or missing password",
                },
            )
        # Both an Argon2id check (the unknown one against the decoy hash).
        self.assertGreater(timings["nobody@hku.hk"], timings[ANN[1]] * 0.3, timings)

    async def test_a_disabled_account_is_told_so_only_with_its_password(self) -> None:
        await self.start(Registration.OPEN)
        store = self.store
        await store._write(_disable, store.dialect, ANN[1])
        peer = self.server.connect("10.0.0.1")
        peer.send_json(join(*ANN, PASS="a wrong guess"))
        self.assertEqual((await self.answer(peer))[0]["CODE"], "AUTH_FAILED")
        peer.send_json(join(*ANN, PASS=SECRET))
        self.assertEqual(
            await self.answer(peer),
            [
                {
                    "CMD": "ACK",
                    "TYPE": "FAIL",
                    "CODE": "ACCOUNT_DISABLED",
                    "REASON": "this account is disabled by the server's admin",
                }
            ],
        )
        # A right password is not a failure: nothing more is counted.
        self.assertEqual(self.server.factory.logins.failures(("uid", ANN[1])), 1)

    async def test_a_hash_with_older_parameters_is_renewed_at_a_right_login(
        self,
    ) -> None:
        await self.start(Registration.OPEN)
        older = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        await self.store.register(Account("bob@hku.hk", older.hash(SECRET)), None, 2)
        peer = self.server.connect("10.0.0.1")
        peer.send_json(join("Bob", "bob@hku.hk", PASS=SECRET))
        self.assertEqual((await self.answer(peer))[0], OKAY)
        hashes: list[str] = []

        async def renewed() -> bool:
            account = await self.store.account("bob@hku.hk")
            hashes.append(account.password_hash)
            return not account.password_hash.startswith("$argon2id$v=19$m=1024,")

        await _eventually(renewed)
        self.assertTrue(hashes[-1].startswith("$argon2id$v=19$m=65536,t=3,p=4$"))
        audit = await self.store._query(read_audit, self.store.dialect, 0)
        # (In any order: the fake clock's time is 0.)
        self.assertCountEqual(
            [(entry.actor, entry.action) for entry in audit],
            [
                (ANN[1], "register"),
                ("bob@hku.hk", "register"),
                ("bob@hku.hk", "rehash"),
            ],
        )
        # The renewed hash logs in.
        peer.lose()
        again = self.server.connect("10.0.0.2")
        again.send_json(join("Bob", "bob@hku.hk", PASS=SECRET))
        await until(lambda: again.transport.value(), 30, "bob's ACK")
        self.assertEqual(again.take()[0], OKAY)

    async def test_wrong_invitation_codes_are_refused_later_and_later(self) -> None:
        await self.start(Registration.INVITE)
        clock = self.server.clock
        peer = self.server.connect("10.0.0.1")
        for n, wait in enumerate([0.0, 0.25, 0.5]):
            peer.send_json(
                {
                    "CMD": "REGISTER",
                    "UID": "bob@hku.hk",
                    "PASS": SECRET,
                    "INVITE": f"x{n}",
                }
            )
            answer = await self.answer(peer)
            if wait:
                self.assertEqual(answer, [])
                clock.advance(wait)
                answer = peer.take()
            self.assertEqual(answer[0]["CODE"], "BAD_INVITE", n)
        self.assertEqual(clock.getDelayedCalls(), [])


async def _eventually(check: Any, timeout: float = 10.0) -> None:
    """Await ``check()`` every 50 ms until it is true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await task.deferLater(reactor, 0.05, lambda: None)


def _disable(cursor: Any, dialect: Any, uid: str) -> None:
    update_account(cursor, dialect, uid, disabled=True)
