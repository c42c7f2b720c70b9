"""The message store in one SQLite file (the default backend).

Appends go to the spool (``muca.store.spool``) on the spool's thread
(``muca.store.spool_thread``) and into SQLite in batches on the database
thread; pages are read from SQLite, with the messages it does not have yet
added from memory.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from muca.store import search_index, sql
from muca.store.base import DEFAULT_ROOMS, ChatMessage, Page, StoreError, may_read
from muca.store.search import Query
from muca.store.shared import SQLStoreOperations
from muca.store.spool import NUL_IN_LINE, Spool, parse_line
from muca.store.spool_thread import STALL_SECONDS, WAIT_BYTES, SpoolThread
from muca.store.sqlite_file import check_file, refuse_foreign_tables

T = TypeVar("T")

log = Logger()


def _used_bytes(cursor: Any) -> int:
    """The bytes of the file's pages in use (free pages, reused by the next
    inserts, not counted)."""
    cursor.execute("PRAGMA page_count")
    pages = cursor.fetchall()[0][0]
    cursor.execute("PRAGMA freelist_count")
    pages -= cursor.fetchall()[0][0]
    cursor.execute("PRAGMA page_size")
    return int(pages * cursor.fetchall()[0][0])


DIALECT = sql.Dialect(
    placeholder="?",
    # INTEGER PRIMARY KEY makes the id the rowid: no second index for it.
    id_type="INTEGER",
    text_type="TEXT",
    encode_text=lambda text: text,
    decode_text=lambda value: value,
    readers_later=True,
    key_only_table=" WITHOUT ROWID",
    used_bytes=_used_bytes,
    size_shrinks=True,
    full_text=search_index.FTS5,
    serial_key="INTEGER PRIMARY KEY",
)


def _insert_lines(cursor: Any, lines: list[str]) -> None:
    """Insert spooled messages, given by their lines (see ``sql.insert_json``)."""
    if any(NUL_IN_LINE in line for line in lines):
        # SQLite's JSON functions would cut the text at U+0000.
        messages = [m for line in lines for m in parse_line(line)]
        sql.insert(cursor, DIALECT, messages)
    else:
        sql.insert_json(cursor, "[" + ",".join(lines) + "]")


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


#: Messages spooled but not in SQLite that start a move into SQLite at once.
INGEST_COUNT = 256

#: Seconds a spooled message waits at most for its move into SQLite.
INGEST_DELAY = 0.05

#: Bytes (about) of spooled messages SQLite has not taken yet past which an
#: append is refused: a database slower than the spool (locked by another
#: program, say) must not make the server hold every message in memory.
UNSTORED_BYTES = 16 << 20

#: Seconds between two tries to move messages into a failing SQLite.
RETRY_DELAY = 1.0

#: Messages moved into SQLite between two writes of its readers index (see
#: ``sql.index_readers``), and the most a private page reads without it.
#: Only private pages (servers with --auth) need that index: it is written
#: once the store has read one, before a private page when it lags by more
#: than this, and every this many messages from then on.
READERS_CHUNK = 5000


class SQLiteStore(SQLStoreOperations):
    """A ``MessageStore`` in the SQLite file at ``path``, created if absent.

    All database work runs on one dedicated thread, in call order, and the
    spool's on another; the reactor thread never blocks on the disk.  An
    append is durable once it is in the spool (a write into the system's
    page cache, like a commit with ``synchronous=NORMAL``): it fires then,
    and the store moves spooled messages into SQLite by batches of
    ``ingest_count`` or after ``ingest_delay`` seconds.  While the disk
    stalls, or once the file is deleted under the server, appends fail (see
    ``SpoolThread``).  While SQLite refuses them, appends fail and
    the store tries again every ``RETRY_DELAY`` seconds.  A file that is not
    a MUCA database is refused and left exactly as it was.
    """

    dialect = DIALECT

    def __init__(
        self,
        path: str | os.PathLike[str],
        reactor: IReactorThreads | None = None,
        ingest_count: int = INGEST_COUNT,
        ingest_delay: float = INGEST_DELAY,
        readers_chunk: int = READERS_CHUNK,
        stall_seconds: float = STALL_SECONDS,
        wait_bytes: int = WAIT_BYTES,
        unstored_bytes: int = UNSTORED_BYTES,
    ) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self._reactor: Any = reactor if reactor is not None else _reactor()
        self._pool: ThreadPool | None = None
        self._connection: sqlite3.Connection | None = None
        self._shutdown_trigger: Any = None
        self._last_id = 0
        self.spool = Spool(self.path)
        self._spool_thread = SpoolThread(
            self.spool, self._reactor, self._spooled, stall_seconds, wait_bytes
        )
        self.ingest_count = ingest_count
        self.ingest_delay = ingest_delay
        self.readers_chunk = readers_chunk
        # Spooled, not yet in SQLite, in id order; _ingesting: a batch of
        # them is being moved; _ingest_call: the move that waits for time.
        self._unstored: list[ChatMessage] = []
        self._unstored_lines: list[str] = []  # their lines in the spool
        # Bytes of those lines; past unstored_bytes, appends are refused
        # (SQLite is behind the spool: what it has not taken must not pile
        # up in memory).
        self._unstored_bytes = 0
        self.unstored_bytes = unstored_bytes
        self._ingesting = False
        self._ingest_done: Deferred[None] = succeed(None)
        self._ingest_call: Any = None
        self._closing = False
        # Moved into SQLite since its readers index was last written; and
        # whether a private page was asked for (see READERS_CHUNK).
        self._unindexed = 0
        self._private_pages = False
        #: Why SQLite refuses messages (appends fail meanwhile), or None.
        self.refusing: str | None = None

    # -- the reactor side ------------------------------------------------

    def _run(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        if self._pool is None:
            return fail(StoreError(f"message database {self.path} is not open"))
        return deferToThreadPool(self._reactor, self._pool, self._guarded, work, *args)

    def open(self) -> Deferred[None]:
        """Create the schema in a new file, or check an existing MUCA file."""
        if self._pool is not None:
            return fail(StoreError(f"message database {self.path} is already open"))
        self._start_pool()
        d = self._run(self._open)

        def opened(last_id: int) -> None:
            self._last_id = last_id
            self._spool_thread.start()

        def failed(failure: Any) -> Any:
            self._stop_pool()
            return failure

        d.addCallbacks(opened, failed)
        return d

    def open_blocking(self) -> None:
        """Open as ``open`` does, on the calling thread, before the reactor
        serves anyone (a server's start); raises ``StoreError``."""
        if self._pool is not None:
            raise StoreError(f"message database {self.path} is already open")
        self._start_pool()
        try:
            # The connection is made here and used by the pool's one thread
            # afterwards: check_same_thread is off for that (see _open).
            self._last_id = self._guarded(self._open)
        except BaseException:
            self._stop_pool()
            raise
        self._spool_thread.start()

    def _start_pool(self) -> None:
        # One thread: SQLite connections are not for sharing, and one writer
        # thread also keeps the appends in their order.
        self._closing = False
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="muca-sqlite-store")
        self._pool.start()
        if hasattr(self._reactor, "addSystemEventTrigger"):
            # A store nobody closed must not keep the process alive at exit.
            self._shutdown_trigger = self._reactor.addSystemEventTrigger(
                "during", "shutdown", self._stop_pool
            )

    def _write(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        return self._run(self._transaction, work, *args)

    def _query(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        return self._run(self._read, work, *args)

    def unavailable(self) -> str | None:
        """Why appends are refused now, or None."""
        return self._spool_thread.problem() or self.refusing

    def _append_in_order(self, messages: list[ChatMessage]) -> Deferred[None]:
        """Spool ``messages``: stored once this fires (see the class)."""
        if self._pool is None:
            return fail(StoreError(f"message database {self.path} is not open"))
        if self.refusing is not None:
            return fail(StoreError(self.refusing))
        if self._unstored_bytes > self.unstored_bytes:
            return fail(
                StoreError(
                    f"message database {self.path}: the database is behind,"
                    " too many messages wait to be written into it"
                )
            )
        return self._spool_thread.append(messages)

    def _spooled(self, messages: list[ChatMessage], line: str) -> None:
        """``messages`` are in the spool as ``line``: readable, and on their
        way into SQLite."""
        self._unstored += messages
        self._unstored_lines.append(line)
        self._unstored_bytes += len(line)
        if self._pool is None:
            return
        if len(self._unstored) >= self.ingest_count:
            self._ingest()
        elif self._ingest_call is None and not self._ingesting:
            self._ingest_call = self._reactor.callLater(self.ingest_delay, self._ingest)

    def _ingest(self) -> None:
        """Move the spooled messages into SQLite, in one transaction (unless
        a move is under way: its end starts the next)."""
        self._cancel_ingest_call()
        if self._ingesting or not self._unstored or self._pool is None:
            return
        if self._spool_thread.gone:
            return  # Nothing goes into a deleted file.
        self._ingesting = True
        self._ingest_done = Deferred()
        batch = list(self._unstored)
        lines = list(self._unstored_lines)
        self._write(_insert_lines, lines).addCallbacks(
            self._ingested, self._not_ingested, (batch, len(lines)), None, (batch,)
        )

    def _cancel_ingest_call(self) -> None:
        call, self._ingest_call = self._ingest_call, None
        if call is not None and call.active():
            call.cancel()

    def _ingested(self, _: object, batch: list[ChatMessage], lines: int) -> None:
        self._ingesting = False
        done = self._ingest_done
        # Kept until now, so that a page read meanwhile has them from memory.
        del self._unstored[: len(batch)]
        self._unstored_bytes -= sum(map(len, self._unstored_lines[:lines]))
        del self._unstored_lines[:lines]
        self._spool_thread.run(self.spool.forget, batch[-1].id).addErrback(
            lambda failure: log.warn(
                "muca: cannot delete spool files of {path}: {reason}",
                path=self.path,
                reason=failure.getErrorMessage(),
            )
        )
        self._unindexed += len(batch)
        if self._unindexed >= self.readers_chunk and self._private_pages:
            self._index_readers()
        if self.refusing is not None:
            self.refusing = None
            log.info(
                "muca: the message database {path} takes messages again",
                path=self.path,
            )
        if not self._closing:
            if len(self._unstored) >= self.ingest_count:
                self._ingest()
            elif self._unstored and self._ingest_call is None:
                self._ingest_call = self._reactor.callLater(
                    self.ingest_delay, self._ingest
                )
        done.callback(None)

    def _index_readers(self) -> None:
        # Behind the moves before it on the database thread, so it covers
        # them; a failure leaves the chunk to the next write (pages read it
        # from the messages meanwhile, only slower).
        self._unindexed = 0

        def failed(failure: Failure) -> None:
            log.warn(
                "muca: cannot write the readers index of {path} (will retry): {reason}",
                path=self.path,
                reason=failure.getErrorMessage(),
            )

        self._write(sql.index_readers, DIALECT).addErrback(failed)

    def _not_ingested(self, failure: Failure, batch: list[ChatMessage]) -> None:
        self._ingesting = False
        done = self._ingest_done
        reason = failure.getErrorMessage()
        if self.refusing is None:
            log.error(
                "muca: cannot move spooled messages into {path}, refusing new"
                " ones until it works again (retrying): {reason}",
                path=self.path,
                reason=reason,
            )
        self.refusing = reason
        if not self._closing and self._ingest_call is None:
            self._ingest_call = self._reactor.callLater(RETRY_DELAY, self._ingest)
        done.callback(None)

    def _page(
        self,
        reader: str | None,
        private: bool,
        lower: int,
        upper: int,
        limit: int,
        rooms: Sequence[str],
    ) -> Deferred[Page]:
        if private and reader is not None:
            self._private_pages = True
        rooms = tuple(rooms)
        d = self._run(self._read_page, reader, private, lower, upper, limit, rooms)
        d.addCallback(self._with_unstored, reader, private, lower, upper, limit, rooms)
        return d

    def _with_unstored(
        self,
        page: Page,
        reader: str | None,
        private: bool,
        lower: int,
        upper: int,
        limit: int,
        rooms: tuple[str, ...],
    ) -> Page:
        """Add the visible messages that SQLite did not have when it was
        read: they are newer than all it had, so the newest ``limit`` of
        them (and one more, for ``more``) are all a page can take."""
        floor = max(page.messages[-1].id if page.messages else 0, lower)
        extra: list[ChatMessage] = []
        for m in reversed(self._unstored):
            if m.id <= floor or len(extra) > limit:
                break
            if m.id < upper and may_read(m, reader, private, rooms):
                extra.append(m)
        if not extra:
            return page
        extra.reverse()
        messages = page.messages + extra
        more = page.more or len(messages) > limit
        return Page(messages[max(0, len(messages) - limit) :] if limit else [], more)

    def message(self, message_id: int) -> Deferred[ChatMessage | None]:
        """The message kept under ``message_id``: what the spool holds is
        moved into SQLite first."""
        return self._move_all().addCallback(
            lambda _: SQLStoreOperations.message(self, message_id)
        )

    def _move_all(self) -> Deferred[None]:
        """Fires once what is spooled now has been moved into SQLite, or
        failed to be (the spool keeps it then)."""
        d: Deferred[None] = Deferred()
        if self._ingesting:
            self._ingest_done.chainDeferred(d)
        else:
            d.callback(None)

        def rest(_: object) -> Deferred[None]:
            if not self._unstored or self._ingesting:
                return succeed(None)
            self._ingest()
            return self._ingest_done

        return d.addCallback(rest)

    def search(
        self,
        reader: str | None,
        private: bool,
        query: Query,
        rooms: Sequence[str] = DEFAULT_ROOMS,
        sender: str | None = None,
        before: int = sql.NO_UPPER_BOUND,
        limit: int = 20,
    ) -> Deferred[Page]:
        """Search as ``MessageStore.search`` does, once what is spooled now
        is in SQLite (a moment: the index is SQLite's)."""
        parent = super().search
        return self._move_all().addCallback(
            lambda _: parent(reader, private, query, rooms, sender, before, limit)
        )

    def prune(
        self,
        max_age_days: float | None,
        max_count: int | None,
        now_ms: int,
        max_bytes: int | None = None,
    ) -> Deferred[int]:
        """Delete messages older than the age, beyond the newest count, or
        the oldest past ``max_bytes`` (what is spooled is moved into SQLite
        first)."""
        return self._move_all().addCallback(
            lambda _: super(SQLiteStore, self).prune(
                max_age_days, max_count, now_ms, max_bytes
            )
        )

    def close(self) -> Deferred[None]:
        """Move what is spooled into SQLite, close the file and stop the
        thread; closing twice is harmless."""
        if self._pool is None:
            return succeed(None)
        self._closing = True
        self._cancel_ingest_call()
        d = self._spool_thread.idle()
        d.addCallback(lambda _: self._move_all())
        d.addCallback(lambda _: self._run(self._close_connection))

        def close_spool(result: Any) -> Deferred[Any]:
            # Whatever became of the connection: the lock must go.
            everything = not self._unstored and not self._spool_thread.gone
            closing = self._spool_thread.run(self.spool.close, everything)
            return closing.addBoth(lambda _: result)

        d.addBoth(close_spool)

        def stop(result: Any) -> Any:
            self._stop_pool()
            return result

        d.addBoth(stop)
        return d

    def close_blocking(self) -> None:
        """Close on the calling thread (the reactor will not run): the
        thread is stopped first, so nothing else uses the connection."""
        self._stop_pool()
        if self._unstored and self._connection is not None:
            try:
                self._guarded(self._transaction, _insert_lines, self._unstored_lines)
                self._unstored = []
                self._unstored_lines = []
                self._unstored_bytes = 0
            except StoreError:
                pass  # The spool keeps them for the next open.
        self._close()

    def _stop_pool(self) -> None:
        self._cancel_ingest_call()
        if self._shutdown_trigger is not None:
            try:
                self._reactor.removeSystemEventTrigger(self._shutdown_trigger)
            except (ValueError, KeyError):
                pass  # Already fired: we are the shutdown.
            self._shutdown_trigger = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
        self._spool_thread.stop()

    # -- the database thread ---------------------------------------------

    def _guarded(self, work: Callable[..., T], *args: Any) -> T:
        try:
            return work(*args)
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"message database {self.path}: {exc}") from None

    def _open(self) -> int:
        check_file(self.path)
        try:
            connection = sqlite3.connect(
                self.path,
                isolation_level=None,  # We issue BEGIN and COMMIT ourselves.
                check_same_thread=False,  # One thread anyway; see open().
                timeout=10.0,
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open message database {self.path}: {exc}"
            ) from None
        try:
            refuse_foreign_tables(self.path, connection)
            self.spool.lock()
            # WAL: readers do not block the writer and a commit is one append
            # to the log.  NORMAL: a commit is in the log (the OS's page
            # cache) when COMMIT returns, so it survives a killed server
            # (kill -9), which is the promise, as the spool's files do; only
            # a power cut or a kernel crash may lose the last commits, the
            # file staying consistent.  FULL would fsync at every commit.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._connection = connection
            last_id = self._transaction(sql.create_or_check, DIALECT)
            # Spooled before the last stop and not moved in: in now.
            # (A line is one append: all of it was stored before, or none.)
            spooled = [
                (messages, line)
                for messages, line in self.spool.recover()
                if messages[0].id > last_id
            ]
            if spooled:
                self._transaction(_insert_lines, [line for _, line in spooled])
                last_id = spooled[-1][0][-1].id
            self._read_at_open(connection.cursor())
            self.spool.start()
            self.spool.watch()
            return last_id
        except BaseException as exc:
            self._connection = None
            connection.close()
            self.spool.close(everything_stored=False)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(
                    f"cannot open message database {self.path}: {exc}"
                ) from None
            raise

    def _transaction(self, work: Callable[..., T], *args: Any) -> T:
        connection = self._require_connection()
        # IMMEDIATE takes the write lock up front, so a second process on the
        # same file waits (busy timeout) instead of failing mid-transaction.
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection.cursor(), *args)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return result

    def _read_page(
        self,
        reader: str | None,
        private: bool,
        lower: int,
        upper: int,
        limit: int,
        rooms: tuple[str, ...],
    ) -> Page:
        if private and reader is not None:
            cursor = self._require_connection().cursor()
            cursor.execute("SELECT MAX(id) FROM muca_messages")
            newest = cursor.fetchall()[0][0] or 0
            if newest - sql.readers_upto(cursor, DIALECT) > self.readers_chunk:
                # Written now rather than read around at length.
                self._transaction(sql.index_readers, DIALECT)
        return self._read(
            sql.read_page, DIALECT, reader, private, lower, upper, limit, rooms
        )

    def _read(self, work: Callable[..., T], *args: Any) -> T:
        # One SELECT outside a transaction sees one consistent snapshot.
        return work(self._require_connection().cursor(), *args)

    def _require_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError(f"message database {self.path} is not open")
        return self._connection

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _close(self) -> None:
        self._close_connection()
        self.spool.close(not self._unstored and not self._spool_thread.gone)
