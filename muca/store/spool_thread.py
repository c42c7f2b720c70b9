"""The spool's own thread: every write, check and deletion of the spool
files (``muca.store.spool``) runs there, so that a stalled disk (a frozen
file system, a hung network mount) stalls no reactor turn.

Appends made while a write is under way wait, in order, and go together
into the next write, as one line.  What waits is bounded: past
``WAIT_BYTES`` an append is refused at once.  A write that has not come
back after ``STALL_SECONDS`` makes the store refuse what waits and what
comes, until it does come back; the messages it carries are stored then,
and delivered.  Once the database file is found deleted or replaced (the
thread checks before every write, and once a second when idle), every
append is refused for good: nothing is written into a deleted file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from muca.store.base import ChatMessage, StoreError
from muca.store.spool import Spool, StoreGone

T = TypeVar("T")

log = Logger()

#: Seconds a spool write may take before the store refuses messages.
STALL_SECONDS = 3.0

#: Bytes (about) of messages that may wait for the disk; past it, refused.
WAIT_BYTES = 8 << 20

#: Seconds between two looks at a write under way and at the file.
WATCH_INTERVAL = 1.0

# What a message costs waiting, beyond its text (ids, names, lists).
_MESSAGE_OVERHEAD = 128

#: Appends waiting for a write: each one's messages and Deferred.
Waiting = list[tuple[list[ChatMessage], Deferred[None]]]


def _cost(messages: Sequence[ChatMessage]) -> int:
    return sum(
        len(m.text) + len(m.sender) + sum(map(len, m.recipients)) + _MESSAGE_OVERHEAD
        for m in messages
    )


class SpoolThread:
    """Writes ``spool`` on a thread of its own, in call order.

    ``written(messages, line)`` is called on the reactor thread once a
    write is in the spool, before the appends it carries fire.
    """

    def __init__(
        self,
        spool: Spool,
        reactor: Any,
        written: Callable[[list[ChatMessage], str], None],
        stall_seconds: float = STALL_SECONDS,
        wait_bytes: int = WAIT_BYTES,
    ) -> None:
        self.spool = spool
        self.stall_seconds = stall_seconds
        self.wait_bytes = wait_bytes
        self._reactor = reactor
        self._written_hook = written
        self._pool: ThreadPool | None = None
        self._watch: LoopingCall | None = None
        self._waiting: Waiting = []
        self._waiting_bytes = 0
        # When the write under way was handed over (None: no write).
        self._writing_since: float | None = None
        self._checking = False
        self._idle: list[Deferred[None]] = []
        #: Why appends are refused for now (the disk stalls), or None.
        self.stalled: str | None = None
        #: Why appends are refused for good (the file is gone), or None.
        self.gone: str | None = None

    def problem(self) -> str | None:
        """Why an append would be refused now, or None."""
        return self.gone or self.stalled

    def start(self) -> None:
        """Start the thread and the watch (the spool has been started)."""
        self.gone = self.stalled = None
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="muca-spool")
        self._pool.start()
        self._watch = LoopingCall(self._look)
        self._watch.clock = self._reactor
        self._watch.start(WATCH_INTERVAL, now=False)

    def stop(self) -> None:
        """Stop the watch and the thread (after what it was given)."""
        watch, self._watch = self._watch, None
        if watch is not None and watch.running:
            watch.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    def run(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``work(*args)`` on the thread, after what it was given."""
        if self._pool is None:
            return fail(StoreError(f"spool of {self.spool.database_path} is closed"))
        return deferToThreadPool(self._reactor, self._pool, work, *args)

    def append(self, messages: list[ChatMessage]) -> Deferred[None]:
        """Write ``messages`` into the spool; fires once they are in it."""
        problem = self.problem()
        if problem is not None:
            return fail(StoreError(problem))
        cost = _cost(messages)
        if self._waiting and self._waiting_bytes + cost > self.wait_bytes:
            return fail(
                StoreError(
                    f"message database {self.spool.database_path}: the disk"
                    " is behind, too many messages wait for it"
                )
            )
        d: Deferred[None] = Deferred()
        self._waiting.append((messages, d))
        self._waiting_bytes += cost
        if self._writing_since is None:
            self._write_waiting()
        return d

    def idle(self) -> Deferred[None]:
        """Fires once nothing waits for the thread's writes."""
        if self._writing_since is None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    def _write_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        self._waiting_bytes = 0
        if not waiting:
            self._writing_since = None
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
            return
        self._writing_since = self._reactor.seconds()
        messages = [m for batch, _ in waiting for m in batch]
        self.run(self.spool.write, messages).addBoth(self._wrote, messages, waiting)

    def _wrote(
        self, outcome: str | Failure, messages: list[ChatMessage], waiting: Waiting
    ) -> None:
        if self.stalled is not None:
            self.stalled = None
            log.info(
                "muca: the disk of {path} takes writes again",
                path=self.spool.database_path,
            )
        if isinstance(outcome, Failure):
            if outcome.check(StoreGone):
                self._gone(outcome.getErrorMessage())
        else:
            self._written_hook(messages, outcome)
        # The next write is on its way before these fire.
        self._write_waiting()
        for _, d in waiting:
            if isinstance(outcome, Failure):
                d.errback(outcome)
            else:
                d.callback(None)

    def _look(self) -> None:
        """Once a second: a write that does not come back is a stall; when
        idle, the database file is checked on the thread."""
        if self._writing_since is not None:
            waited = self._reactor.seconds() - self._writing_since
            if self.stalled is None and waited >= self.stall_seconds:
                self.stalled = (
                    f"message database {self.spool.database_path}: the disk has"
                    f" taken no write for {self.stall_seconds:g} s"
                )
                log.error(
                    "muca: {reason}; refusing messages until it does",
                    reason=self.stalled,
                )
                self._refuse_waiting(self.stalled)
        elif not self._checking and self.gone is None:
            self._checking = True
            self.run(self.spool.check).addBoth(self._checked)

    def _checked(self, outcome: object) -> None:
        self._checking = False
        if isinstance(outcome, Failure) and outcome.check(StoreGone):
            self._gone(outcome.getErrorMessage())

    def _gone(self, reason: str) -> None:
        if self.gone is None:
            self.gone = reason
            log.error("muca: {reason}; refusing messages from now on", reason=reason)
            self._refuse_waiting(reason)

    def _refuse_waiting(self, reason: str) -> None:
        waiting, self._waiting = self._waiting, []
        self._waiting_bytes = 0
        for _, d in waiting:
            d.errback(StoreError(reason))
