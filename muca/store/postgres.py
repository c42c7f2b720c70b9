"""The message store in a PostgreSQL database (``--db postgresql://…``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.python.failure import Failure

from muca.store import retention, sql
from muca.store.base import StoreError
from muca.store.shared import SQLStoreOperations

T = TypeVar("T")

#: The history's tables, whose size ``--history-bytes`` bounds.
TABLES = (
    "muca_messages",
    "muca_recipients",
    "muca_readers",
    "muca_users",
    "muca_meta",
    "muca_rooms",
    "muca_room_invites",
    "muca_account_rooms",
)


def _used_bytes(cursor: Any) -> int:
    """The bytes the history's tables take, indexes and TOAST included
    (space of deleted rows too, until PostgreSQL reuses it)."""
    cursor.execute(
        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c"
        " WHERE c.relname = ANY(%s) AND pg_table_is_visible(c.oid)",
        (list(TABLES),),
    )
    return int(cursor.fetchall()[0][0])


# PostgreSQL's TEXT cannot hold U+0000, which JSON can carry; BYTEA keeps
# every message exactly, one bad character never fails a whole batch.
DIALECT = sql.Dialect(
    placeholder="%s",
    id_type="BIGINT",
    text_type="BYTEA",
    encode_text=lambda text: text.encode("utf-8"),
    decode_text=lambda value: bytes(value).decode("utf-8"),
    readers_later=False,
    key_only_table="",
    used_bytes=_used_bytes,
    size_shrinks=False,
)

#: Makes the servers of a cluster prune one at a time (each would delete
#: the same share again otherwise).  "MUCP" in ASCII.
PRUNE_LOCK = 0x4D554350

#: Serialises schema creation between servers of a cluster opening at once
#: (CREATE TABLE IF NOT EXISTS races otherwise).  "MUCA" in ASCII.
SCHEMA_LOCK = 0x4D554341

#: Seconds to wait for the server when the conninfo does not say.
CONNECT_TIMEOUT = 10


def describe(conninfo: str) -> str:
    """Where ``conninfo`` points, without its password, for messages."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "(unreadable connection string)"
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or params.get("user") or "(default)"
    return f"database {dbname} on {host}:{port}"


class _QuietConnection(adbapi.Connection):
    """adbapi's pooled connection, whose rollback after the server broke
    it (a restart, a kill) drops it without a word: adbapi's own logs two
    "Rollback failed" tracebacks for what the store already reports in one
    line (its ``STORE_UNAVAILABLE`` refusal and the bus's outage line). The
    next call opens a new connection; the work's own error goes on up."""

    def rollback(self) -> None:
        try:
            self._connection.rollback()
            # adbapi's check that the connection still answers.
            cursor = self._connection.cursor()
            cursor.execute(self._pool.good_sql)
            cursor.close()
            self._connection.commit()
        except Exception:
            self._pool.disconnect(self._connection)


class ConnectionPool(adbapi.ConnectionPool):
    """``adbapi.ConnectionPool`` of psycopg 3 connections that reconnects
    after the server broke one, quietly (see :class:`_QuietConnection`)."""

    connectionFactory = _QuietConnection  # noqa: N815


class PostgresStore(SQLStoreOperations):
    """A ``MessageStore`` in the PostgreSQL database named by ``conninfo``.

    ``conninfo`` is a ``postgresql://`` URL or a libpq ``key=value`` string.
    Tables are created if absent (all named ``muca_*``); queries run on the
    threads of an ``adbapi.ConnectionPool`` of psycopg 3 connections.
    """

    dialect = DIALECT

    def __init__(
        self,
        conninfo: str,
        reactor: IReactorThreads | None = None,
        max_connections: int = 3,
    ) -> None:
        super().__init__()
        self.conninfo = conninfo
        self.where = describe(conninfo)
        self._reactor = reactor
        self._max_connections = max_connections
        self._pool: adbapi.ConnectionPool | None = None
        self._last_id = 0

    def _run(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        if self._pool is None:
            return fail(StoreError(f"PostgreSQL {self.where} is not open"))
        d = self._pool.runInteraction(work, *args)
        d.addErrback(self._readable)
        return d

    def _readable(self, failure: Failure) -> Failure:
        if failure.check(StoreError):
            return failure
        if failure.check(psycopg.Error):
            return Failure(StoreError(f"PostgreSQL {self.where}: {failure.value}"))
        if failure.check(adbapi.ConnectionLost):
            # adbapi's word for a connection broken under a query (a restart
            # of the server): the next call reconnects.
            return Failure(StoreError(f"PostgreSQL {self.where}: connection lost"))
        return failure

    def open(self) -> Deferred[None]:
        """Connect, then create the schema or check an existing one."""
        if self._pool is not None:
            return fail(StoreError(f"PostgreSQL {self.where} is already open"))
        try:
            extra = self._connect_arguments()
        except StoreError:
            return fail()
        self._start_pool(extra)
        d = self._run(self._open)

        def opened(last_id: int) -> None:
            self._last_id = last_id

        def failed(failure: Failure) -> Failure:
            self._close_pool()
            if failure.check(StoreError):
                message = str(failure.value).replace(
                    f"PostgreSQL {self.where}:", f"cannot open PostgreSQL {self.where}:"
                )
                return Failure(StoreError(message))
            return failure

        d.addCallbacks(opened, failed)
        return d

    def open_blocking(self) -> None:
        """Open as ``open`` does, on the calling thread, before the reactor
        serves anyone (a server's start); raises ``StoreError``."""
        if self._pool is not None:
            raise StoreError(f"PostgreSQL {self.where} is already open")
        extra = self._connect_arguments()
        try:
            with psycopg.connect(self.conninfo, **extra) as connection:
                with connection.cursor() as cursor:
                    last_id = self._open(cursor)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open PostgreSQL {self.where}: {exc}") from None
        self._start_pool(extra)
        self._last_id = last_id

    def _connect_arguments(self) -> dict[str, Any]:
        try:
            params = conninfo_to_dict(self.conninfo)
        except psycopg.Error as exc:
            raise StoreError(f"bad PostgreSQL connection string: {exc}") from None
        extra: dict[str, Any] = {}
        # Without a timeout an unreachable host would hang the open forever.
        if "connect_timeout" not in params:
            extra["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in params:
            extra["application_name"] = "muca"
        return extra

    def _start_pool(self, extra: dict[str, Any]) -> None:
        reactor = {} if self._reactor is None else {"cp_reactor": self._reactor}
        # adbapi calls psycopg.connect(conninfo, **extra) minus the cp_ keys;
        # psycopg merges keyword arguments into the conninfo.
        self._pool = ConnectionPool(
            "psycopg",
            self.conninfo,
            cp_min=1,
            cp_max=self._max_connections,
            # A connection broken by a server restart is dropped and the next
            # call reconnects, rather than failing forever.
            cp_reconnect=True,
            cp_noisy=False,
            **reactor,
            **extra,
        )
        # Started here rather than when the reactor starts, so that a store
        # opened before reactor.run() (or under pytest) works as well.
        self._pool.start()

    def _open(self, cursor: Any) -> int:
        cursor.execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
        last_id = sql.create_or_check(cursor, DIALECT)
        self._read_at_open(cursor)
        return last_id

    def _write(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        # adbapi's runInteraction commits when the work returns.
        return self._run(work, *args)

    _query = _write

    def _prune(self, cursor: Any, *limits: Any) -> int:
        # One server of a cluster at a time.
        cursor.execute(f"SELECT pg_advisory_xact_lock({PRUNE_LOCK})")
        return retention.prune(cursor, DIALECT, *limits)

    def close(self) -> Deferred[None]:
        """Close every connection and stop the pool's threads."""
        self._close_pool()
        return succeed(None)

    def close_blocking(self) -> None:
        """Close every connection now (the reactor will not run)."""
        self._close_pool()

    def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
