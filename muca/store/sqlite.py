"""The message store in one SQLite file (the default backend)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from muca.store import sql
from muca.store.base import StoreError
from muca.store.shared import SQLStoreOperations

T = TypeVar("T")

SQLITE_HEADER = b"SQLite format 3\x00"

DIALECT = sql.Dialect(
    placeholder="?",
    # INTEGER PRIMARY KEY makes the id the rowid: no second index for it.
    id_type="INTEGER",
    text_type="TEXT",
    encode_text=lambda text: text,
    decode_text=lambda value: value,
    readers_later=True,
    key_only_table=" WITHOUT ROWID",
)


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class SQLiteStore(SQLStoreOperations):
    """A ``MessageStore`` in the SQLite file at ``path``, created if absent.

    All database work runs on one dedicated thread, in call order; the reactor
    thread never blocks on the file.  A file that is not a MUCA database is
    refused and left exactly as it was.
    """

    dialect = DIALECT

    def __init__(
        self, path: str | os.PathLike[str], reactor: IReactorThreads | None = None
    ) -> None:
        self.path = os.fspath(path)
        self._reactor: Any = reactor if reactor is not None else _reactor()
        self._pool: ThreadPool | None = None
        self._connection: sqlite3.Connection | None = None
        self._shutdown_trigger: Any = None
        self._last_id = 0

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

    def _start_pool(self) -> None:
        # One thread: SQLite connections are not for sharing, and one writer
        # thread also keeps the appends in their order.
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

    def close(self) -> Deferred[None]:
        """Close the file and stop the thread; closing twice is harmless."""
        if self._pool is None:
            return succeed(None)
        d = self._run(self._close)

        def stop(result: Any) -> Any:
            self._stop_pool()
            return result

        d.addBoth(stop)
        return d

    def close_blocking(self) -> None:
        """Close on the calling thread (the reactor will not run): the
        thread is stopped first, so nothing else uses the connection."""
        self._stop_pool()
        self._close()

    def _stop_pool(self) -> None:
        if self._shutdown_trigger is not None:
            try:
                self._reactor.removeSystemEventTrigger(self._shutdown_trigger)
            except (ValueError, KeyError):
                pass  # Already fired: we are the shutdown.
            self._shutdown_trigger = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    # -- the database thread ---------------------------------------------

    def _guarded(self, work: Callable[..., T], *args: Any) -> T:
        try:
            return work(*args)
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"message database {self.path}: {exc}") from None

    def _open(self) -> int:
        self._refuse_foreign_file()
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
            self._refuse_foreign_tables(connection)
            # WAL: readers do not block the writer and a commit is one append
            # to the log.  NORMAL: a commit is in the log (the OS's page
            # cache) when COMMIT returns, so it survives a killed server
            # (kill -9), which is the promise; only a power cut or a kernel
            # crash may lose the last commits, the file staying consistent.
            # FULL would fsync at every commit: about 2 ms each here, which a
            # conversation of one message in flight per user (every message
            # waits for its commit) pays in full, halving its rate.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._connection = connection
            return self._transaction(sql.create_or_check, DIALECT)
        except BaseException as exc:
            self._connection = None
            connection.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(
                    f"cannot open message database {self.path}: {exc}"
                ) from None
            raise

    def _refuse_foreign_file(self) -> None:
        # Checked before SQLite sees the file: SQLite would happily turn an
        # empty-looking path into a database, and we must never write to
        # someone else's file.
        if os.path.isdir(self.path):
            raise StoreError(f"cannot open message database {self.path}: a directory")
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise StoreError(
                f"cannot open message database {self.path}: "
                f"directory {parent} does not exist"
            )
        try:
            with open(self.path, "rb") as existing:
                header = existing.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(
                f"cannot open message database {self.path}: {exc.strerror}"
            ) from None
        if header and header != SQLITE_HEADER:
            raise StoreError(
                f"{self.path} is not a MUCA database (not an SQLite file);"
                " left untouched"
            )

    def _refuse_foreign_tables(self, connection: sqlite3.Connection) -> None:
        # A read only: SQLite writes nothing to the file for it.
        try:
            tables = {
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not a MUCA database ({exc}); left untouched"
            ) from None
        if tables and "muca_meta" not in tables:
            names = ", ".join(sorted(tables)[:5])
            raise StoreError(
                f"{self.path} is not a MUCA database (it holds other tables: "
                f"{names}); left untouched"
            )

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

    def _read(self, work: Callable[..., T], *args: Any) -> T:
        # One SELECT outside a transaction sees one consistent snapshot.
        return work(self._require_connection().cursor(), *args)

    def _require_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError(f"message database {self.path} is not open")
        return self._connection

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
