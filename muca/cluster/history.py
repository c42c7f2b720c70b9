"""The cluster's history: every batch of messages is stored in the shared
PostgreSQL database before it is appended to the stream.

A session-level advisory lock (:data:`APPEND_LOCK`) makes storing and
appending one step at a time cluster-wide, so ids follow the stream's order
and a message is committed before any node can read it. A batch whose
append got no answer from Redis keeps its rows until the stream has told
whether it was accepted (see :mod:`muca.cluster.publishing`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.cluster import scripts
from muca.cluster.entries import Publication
from muca.protocol.messages import ChatMessage
from muca.server.bus import ClusterUnavailable
from muca.store import postgres, sql
from muca.store.base import ChatMessage as StoredMessage
from muca.store.base import StoreError, one_line

#: The PostgreSQL advisory lock that makes appends one at a time.
APPEND_LOCK = 0x4D55434B

# The cluster's log lines keep the one namespace they had in one module.
log = Logger(namespace="muca.cluster.redisbus")


class UnsureOutcome(Exception):
    """Redis did not answer: the batch may or may not be on the stream."""


def _delete(cursor: Any, first: int, last: int) -> None:
    """Delete stored messages ``first``..``last`` (not accepted after all)."""
    sql.delete_range(cursor, postgres.DIALECT, first, last)


class HistoryWriter:
    """One connection to the shared database that holds the append lock.

    ``reactor`` runs the database's threads, and ``run`` (which runs one
    of the cluster's scripts in Redis, the bus's commands connection) on
    its thread.
    """

    def __init__(
        self, reactor: IReactorThreads, database: str, run: Callable[..., Deferred[Any]]
    ) -> None:
        self._reactor = reactor
        self._run = run
        self._pool = postgres.ConnectionPool(
            "psycopg",
            database,
            cp_reactor=reactor,
            cp_min=1,
            cp_max=1,
            cp_reconnect=True,
            cp_noisy=False,
            connect_timeout=postgres.CONNECT_TIMEOUT,
            application_name="muca-cluster-writer",
        )
        # Stored batches whose append got no answer: token -> (first id,
        # last id), deleted if the stream shows they were not accepted.
        self._unsure_rows: dict[str, tuple[int, int]] = {}
        # Batches on the stream, by the thread that appended them: token ->
        # first id (read once that thread is done, whatever came after).
        self._appended: dict[str, int] = {}
        #: Why the database cannot be used (its last error), or None: set
        #: and cleared by appends and by :meth:`probe`.
        self.problem: str | None = None
        self._probing = False

    def start(self) -> None:
        self._pool.start()

    def close(self) -> None:
        self._pool.close()

    def append(self, drafts: list[ChatMessage], batch: Publication) -> Deferred[int]:
        """Store the batch of ``drafts`` and append it to the stream; fire
        with its first id, or fail (:class:`UnsureOutcome`: Redis did not
        answer)."""
        d = self._pool.runWithConnection(self._append_locked, drafts, batch)
        return d.addBoth(self._note)

    def probe(self) -> None:
        """Check that the database answers (the bus does, once a second),
        so that :attr:`problem` is right when no message is being sent."""
        if self._probing:
            return
        self._probing = True
        d = self._pool.runQuery("SELECT 1").addBoth(self._note)
        d.addErrback(lambda _: None)
        d.addBoth(self._probed)

    def _probed(self, _: Any) -> None:
        self._probing = False

    def _note(self, result: Any) -> Any:
        """Note whether the database answered; pass ``result`` on."""
        if isinstance(result, Failure) and result.check(
            psycopg.Error, adbapi.ConnectionLost, StoreError
        ):
            error = one_line(result.getErrorMessage()) or "connection lost"
            if self.problem is None:
                log.info("cluster: the history database fails: {error}", error=error)
            self.problem = f"PostgreSQL: {error}"
        else:
            # Answered (a failure of Redis's comes after the database's part).
            if self.problem is not None:
                log.info("cluster: the history database answers again")
            self.problem = None
        return result

    def appended(self, token: str) -> int | None:
        """The first id of batch ``token`` if it made it to the stream,
        whatever failed after (forgotten once asked)."""
        return self._appended.pop(token, None)

    def accepted(self, token: str) -> None:
        """Batch ``token``, whose append got no answer, is on the stream."""
        self._unsure_rows.pop(token, None)

    def not_accepted(self, token: str) -> None:
        """Batch ``token``, whose append got no answer, is not on the stream:
        delete its rows (stored but never accepted: not history either)."""
        rows = self._unsure_rows.pop(token, None)
        if rows is not None:
            self._pool.runInteraction(_delete, *rows).addErrback(
                lambda f: log.failure("deleting unaccepted rows", f)
            )

    def _append_locked(
        self,
        connection: Any,
        drafts: list[ChatMessage],
        batch: Publication,
    ) -> int:
        """Store a batch in PostgreSQL, then append it to the stream; in a
        pool thread. Returns its first id.

        A session-level advisory lock makes this whole step one at a time
        cluster-wide, so ids follow the stream's order and a message is
        committed before any node can read it; a node that dies holding the
        lock loses its session, and the lock with it.
        """
        reactor = self._reactor
        cursor = connection.cursor()
        cursor.execute("SELECT pg_advisory_lock(%s)", (APPEND_LOCK,))
        try:
            highest = sql.read_last_id(cursor, postgres.DIALECT)
            connection.commit()
            first = int(
                blockingCallFromThread(
                    reactor, self._run, scripts.NEXT_ID, str(highest)
                )
            )
            rows = [
                StoredMessage(
                    first + index,
                    m.ts,
                    m.sender,
                    m.kind,
                    m.recipients,
                    m.text,
                    m.nickname,
                    m.room,
                )
                for index, m in enumerate(drafts)
            ]
            sql.insert(cursor, postgres.DIALECT, rows)
            connection.commit()
            try:
                blockingCallFromThread(
                    reactor,
                    self._run,
                    scripts.PUBLISH,
                    *batch.arguments(first - 1, first),
                )
            except ClusterUnavailable:
                # Never sent: not accepted, so not kept either.
                _delete(cursor, first, first + len(drafts) - 1)
                connection.commit()
                raise
            except Exception as error:
                # No answer: the stream decides (see Publisher._publish_failed); the
                # rows stay until it has, then go if it was not accepted.
                self._unsure_rows[batch.token] = (first, first + len(drafts) - 1)
                raise UnsureOutcome(str(error)) from None
            # On the stream: accepted, even if the database goes away before
            # the lock is given back (its session ends, and the lock with it).
            self._appended[batch.token] = first
            return first
        finally:
            connection.rollback()
            cursor.execute("SELECT pg_advisory_unlock(%s)", (APPEND_LOCK,))
            connection.commit()
