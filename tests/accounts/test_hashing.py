"""The password hashing threads: off the reactor thread, and at a lower
priority than it, so that chat goes first while logins are checked."""

from __future__ import annotations

import os
import threading

from argon2 import PasswordHasher
from twisted.trial.unittest import TestCase

from muca.accounts.passwords import HASHING_NICE, PasswordHashing


class _Watching(PasswordHasher):
    """A hasher that notes the thread and priority it hashes at."""

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.thread = threading.get_ident()
        self.nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return super().hash(password, salt=salt)


class HashingThreadTests(TestCase):
    async def test_hashing_runs_off_the_reactor_at_a_lower_priority(self) -> None:
        hasher = _Watching(time_cost=1, memory_cost=8, parallelism=1)
        hashing = PasswordHashing(hasher)
        self.addCleanup(hashing.stop)
        encoded = await hashing.hash("correct horse battery")
        self.assertTrue(await hashing.verify(encoded, "correct horse battery"))
        self.assertFalse(await hashing.verify(encoded, "wrong horse battery"))
        self.assertNotEqual(hasher.thread, threading.get_ident())
        ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        self.assertEqual(hasher.nice, min(19, ours + HASHING_NICE))
