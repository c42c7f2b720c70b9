"""Passwords: what a new one needs, and Argon2id hashing off the reactor.

Hashes are argon2-cffi's encoded strings (``$argon2id$v=19$m=…,t=…,p=…$
salt$hash``): the parameters travel inside each hash, so that they can be
raised later and an older hash still verifies (and is hashed again with the
new ones at its next right login, see :meth:`PasswordHashing.needs_rehash`).

Hashing takes tens of milliseconds of CPU and tens of MiB by design: it runs
on a small thread pool of its own, never on the reactor thread nor on the
store's thread. A user id without an account is checked against a decoy
hash, made once with the same parameters, so that the time an answer takes
does not tell which user ids exist.
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

#: Characters a password needs at least.
MIN_PASSWORD = 8
#: Characters a password may have at most (hashing cost is bounded anyway,
#: but nobody needs more, and a frame may carry 64 KiB).
MAX_PASSWORD = 1024
#: Threads hashing at once: each takes ``memory_cost`` KiB while it hashes.
HASHING_THREADS = 2
#: What every password needs, said in each WEAK_PASSWORD.
PASSWORD_RULE = (
    f"a password needs at least {MIN_PASSWORD} characters"
    f" (at most {MAX_PASSWORD}) and must not be the user id"
)


def password_problem(uid: str, password: str) -> str | None:
    """Why ``password`` is refused for ``uid`` (a ``WEAK_PASSWORD``'s
    reason, naming what is needed), or None."""
    if len(password) < MIN_PASSWORD:
        return f"too short: {PASSWORD_RULE}"
    if len(password) > MAX_PASSWORD:
        return f"too long: {PASSWORD_RULE}"
    if password.casefold() == uid.casefold():
        return f"it is the user id: {PASSWORD_RULE}"
    return None


#: How much lower than the reactor's the hashing threads' priority is (a
#: nice value added): on as many cores as the hashing threads take, chat
#: goes first and a login waits (``python -m bench --workload logins``).
HASHING_NICE = 10

_thread_state = threading.local()


def _niced(work: Any, *args: Any) -> Any:
    """Run ``work`` on a hashing thread whose priority is lowered first
    (once per thread; Argon2's own threads, made by it, inherit it)."""
    if not getattr(_thread_state, "niced", False):
        _thread_state.niced = True
        try:
            thread = threading.get_native_id()
            niceness = os.getpriority(os.PRIO_PROCESS, thread) + HASHING_NICE
            os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness))
        except OSError:
            pass  # a system without per-thread priorities: as it was
    return work(*args)


class PasswordHashing:
    """Argon2id hashing and verification on a thread pool of its own.

    ``hasher``: argon2-cffi's ``PasswordHasher`` (its defaults, RFC 9106's
    low-memory profile, when None). ``reactor``: where results fire (the
    global one, looked up at first use, when None). The pool starts at the
    first call and stops when the reactor shuts down or :meth:`stop` is
    called; after that every call fails.
    """

    def __init__(
        self,
        hasher: PasswordHasher | None = None,
        reactor: Any = None,
        threads: int = HASHING_THREADS,
    ) -> None:
        self.hasher = hasher if hasher is not None else PasswordHasher()
        self._reactor = reactor
        self._threads = threads
        self._pool: ThreadPool | None = None
        self._decoy: str | None = None
        self._decoy_lock = threading.Lock()
        self._trigger: Any = None
        self._stopped = False

    def _run(self, work: Any, *args: Any) -> Deferred[Any]:
        if self._stopped:
            # Stopped for good (the reactor is shutting down): a pool
            # started now would keep the process alive.
            return fail(RuntimeError("password hashing has stopped"))
        if self._pool is None:
            if self._reactor is None:
                from twisted.internet import reactor

                self._reactor = reactor
            self._pool = ThreadPool(
                minthreads=0, maxthreads=self._threads, name="muca-password-hashing"
            )
            self._pool.start()
            self._trigger = self._reactor.addSystemEventTrigger(
                "during", "shutdown", self.stop
            )
        return deferToThreadPool(self._reactor, self._pool, _niced, work, *args)

    def stop(self) -> None:
        """Stop the pool (its threads finish what they do), for good: a
        later call fails."""
        self._stopped = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
        trigger, self._trigger = self._trigger, None
        if trigger is not None and self._reactor is not None:
            try:
                self._reactor.removeSystemEventTrigger(trigger)
            except (ValueError, KeyError):
                pass  # the trigger itself is what called this

    def hash(self, password: str) -> Deferred[str]:
        """The encoded Argon2id hash of ``password`` (a new salt each time)."""
        return self._run(self.hasher.hash, password)

    def verify(self, encoded: str | None, password: str) -> Deferred[bool]:
        """Whether ``password`` is the one ``encoded`` was made from; None
        (no such account) checks a decoy and is always False, in about the
        time a real check takes."""
        return self._run(self._verify, encoded, password)

    def needs_rehash(self, encoded: str) -> bool:
        """Whether ``encoded`` was made with other parameters than today's
        (cheap: it only reads the parameters)."""
        try:
            return self.hasher.check_needs_rehash(encoded)
        except InvalidHashError:
            return True

    # -- the hashing threads ---------------------------------------------

    def _verify(self, encoded: str | None, password: str) -> bool:
        if encoded is None:
            try:
                self.hasher.verify(self._decoy_hash(), password)
            except VerificationError:
                pass
            return False
        try:
            return self.hasher.verify(encoded, password)
        except (VerificationError, InvalidHashError):
            return False

    def _decoy_hash(self) -> str:
        with self._decoy_lock:
            if self._decoy is None:
                # A random password nobody knows: the decoy never matches.
                self._decoy = self.hasher.hash(secrets.token_urlsafe(24))
            return self._decoy
