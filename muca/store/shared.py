"""What every SQL backend does the same way, written once: the store's
operations over two hooks that say how a backend runs work on its database
thread (in a write transaction, or as a read)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.store import sql
from muca.store.base import ChatMessage, Page, StoreError

T = TypeVar("T")

log = Logger()

#: Messages stored between two writes of the readers index, with a
#: ``readers_later`` dialect: the most a private page reads unindexed.
READERS_CHUNK = 1000


class SQLStoreOperations:
    """The ``MessageStore`` operations of a backend with ``dialect``,
    ``_last_id``, ``_write`` and ``_query``."""

    dialect: sql.Dialect
    _last_id: int
    # Stored since the last write of the readers index was started (an open
    # writes it whole).
    _unindexed = 0

    def _write(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``work(cursor, *args)`` in one committed transaction."""
        raise NotImplementedError

    def _query(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``work(cursor, *args)`` as a read."""
        raise NotImplementedError

    def last_id(self) -> int:
        """The highest id ever stored (0 if none); valid after ``open``."""
        return self._last_id

    def append(self, messages: Sequence[ChatMessage]) -> Deferred[None]:
        """Store ``messages`` in one transaction; fires after the commit."""
        messages = list(messages)
        try:
            sql.check_batch(messages, self._last_id)
        except StoreError:
            return fail()
        if not messages:
            return succeed(None)
        d = self._write(sql.insert, self.dialect, messages)
        newest = messages[-1].id

        def stored(_: object) -> None:
            self._last_id = max(self._last_id, newest)
            if self.dialect.readers_later:
                self._unindexed += len(messages)
                if self._unindexed >= READERS_CHUNK:
                    self._index_readers()

        d.addCallback(stored)
        return d

    def _index_readers(self) -> None:
        # Queued behind the appends before it, so it covers every message
        # stored so far; a failure leaves them to the next chunk's write
        # (pages read them from the messages meanwhile, only slower).
        self._unindexed = 0

        def failed(failure: Failure) -> None:
            log.warn(
                "muca: cannot write the readers index of the message database"
                " (will retry): {reason}",
                reason=failure.getErrorMessage(),
            )

        self._write(sql.index_readers, self.dialect).addErrback(failed)

    def latest(self, reader: str | None, private: bool, limit: int) -> Deferred[Page]:
        """The newest ``limit`` messages ``reader`` may see, oldest first."""
        return self._page(reader, private, 0, sql.NO_UPPER_BOUND, limit)

    def since(
        self, reader: str | None, private: bool, after_id: int, limit: int = 1000
    ) -> Deferred[Page]:
        """Visible messages with an id above ``after_id``: the newest ``limit``."""
        return self._page(reader, private, after_id, sql.NO_UPPER_BOUND, limit)

    def before(
        self, reader: str | None, private: bool, before_id: int, limit: int
    ) -> Deferred[Page]:
        """The newest ``limit`` visible messages with an id below ``before_id``."""
        return self._page(reader, private, 0, before_id, limit)

    def _page(
        self, reader: str | None, private: bool, lower: int, upper: int, limit: int
    ) -> Deferred[Page]:
        return self._query(
            sql.read_page, self.dialect, reader, private, lower, upper, limit
        )

    def remember_user(self, uid: str) -> Deferred[None]:
        """Record that ``uid`` has joined."""
        return self._write(sql.remember_user, self.dialect, uid)

    def known_users(self) -> Deferred[set[str]]:
        """Every user id ever remembered."""
        return self._query(sql.known_users)

    def prune(
        self, max_age_days: float | None, max_count: int | None, now_ms: int
    ) -> Deferred[int]:
        """Delete messages older than the age or beyond the newest count."""
        return self._write(sql.prune, self.dialect, max_age_days, max_count, now_ms)
