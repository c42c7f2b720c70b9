"""Publishing a node's messages on the cluster's stream, and what becomes
of each batch.

Drafts queued while a batch is in flight go as the next batch, one script
call (group commit). A batch this node published is delivered from memory
when it is read back from the stream (:meth:`Publisher.own_batch`). A batch
whose publishing got no answer may or may not be on the stream: it is
accepted if the reader finds it there, refused once the reader has caught
up with the end of the stream as seen after the reconnection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from muca.cluster import scripts
from muca.cluster.entries import Publication, publication
from muca.cluster.history import HistoryWriter, UnsureOutcome
from muca.cluster.redisclient import encode
from muca.cluster.stream import StreamReader, stream_id
from muca.protocol.messages import ChatMessage
from muca.server.bus import ClusterUnavailable
from muca.store.base import StoreError

#: Told of drafts that were not accepted (none of them was delivered):
#: ``BusListener.not_accepted``.
Refused = Callable[[list[ChatMessage], Failure], None]

#: Appends a batch to the stream without storing it; fires with the batch's
#: first id.
Append = Callable[[Publication], Deferred[Any]]


class Publisher:
    """A node's batches: queued, appended, read back or found missing.

    ``append`` puts a batch on the stream when there is no history
    (:attr:`writer` is None); ``stream`` is the node's reader, whose
    position tells whether a batch with no answer was accepted; ``refused``
    is told of the drafts that were not. Accepted messages are delivered
    when the reader reads them back, so a ``SEND`` costs no Deferred.
    """

    def __init__(
        self,
        clock: IReactorTime,
        node: str,
        stream: StreamReader,
        append: Append,
        refused: Refused,
    ) -> None:
        self.clock = clock
        self.node = node
        self._stream = stream
        self._append = append
        self._refused = refused
        #: Stores each batch before appending it (set when the bus starts
        #: with a database).
        self.writer: HistoryWriter | None = None
        self._queue: list[ChatMessage] = []
        self._publishing = False
        self._batches = 0
        # Batches of ours not read back from the stream yet: token ->
        # (batch number, its drafts), so that they need no decoding here.
        self._own: dict[str, tuple[int, list[ChatMessage]]] = {}
        # Batches whose publishing got no answer: token -> their drafts.
        self._unsure: dict[str, list[ChatMessage]] = {}
        # (stream end, tokens): refused once the reader is past that end.
        self._unsure_checks: list[tuple[tuple[int, int], set[str]]] = []

    def publish(self, drafts: Sequence[ChatMessage]) -> None:
        """Queue drafts for the next batch: delivered when read back from
        the stream, or told to ``refused``."""
        self._queue.extend(drafts)
        if not self._publishing:
            # At the end of this reactor turn: what it accepts is one batch.
            self._publishing = True
            self.clock.callLater(0, self._publish_next)

    def _publish_next(self) -> None:
        drafts, self._queue = self._queue, []
        if not drafts:
            self._publishing = False
            return
        self._publishing = True
        self._batches += 1
        token = f"{self.node}:{self._batches}"
        batch = publication(drafts, token)
        # When it comes back on the stream, this node takes it from here.
        self._own[token] = (self._batches, drafts)
        if self.writer is not None:
            d = self.writer.append(drafts, batch)
        else:
            d = self._append(batch)
        d.addCallbacks(
            self._published, self._publish_failed, (token,), None, (drafts, token)
        )
        d.addBoth(lambda _: self._publish_next())

    def _published(self, first: Any, token: str) -> None:
        # Delivered, here as on every node, when the reader reads it back.
        if self.writer is not None:
            self.writer.appended(token)

    def _publish_failed(
        self, failure: Failure, drafts: list[ChatMessage], token: str
    ) -> None:
        first = self.writer.appended(token) if self.writer is not None else None
        if first is not None:
            # Only giving the append lock back failed: the batch is out.
            return
        unsure = failure.check(UnsureOutcome) or (
            self.writer is None and not failure.check(ClusterUnavailable)
        )
        if not unsure:
            # Never sent, or refused by the database: surely not accepted.
            self._own.pop(token, None)
            self._refuse(drafts, failure)
            return
        # No answer in time: Redis may have run the script all the same (a
        # paused Redis runs what it finds on resuming). The stream tells:
        # the batch is in it or it is not, once the reader has caught up
        # with the end of the stream as seen after the reconnection.
        self._unsure[token] = drafts

    # Read back from the stream

    def own_batch(self, token: str) -> list[ChatMessage] | None:
        """The drafts of our batch ``token``, read back; ours published
        before it and not read back by now are forgotten (they are decoded
        if they do come: a batch whose script timed out can land later)."""
        own = self._own
        if not own:
            return None
        entry = own.pop(token, None)
        if entry is None:
            return None
        number, drafts = entry
        for older in [t for t, (n, _) in own.items() if n < number]:
            del own[older]
        return drafts

    @property
    def unsure(self) -> bool:
        """Whether a batch's publishing got no answer and is not settled."""
        return bool(self._unsure)

    def settle(self, token: str, first: int) -> None:
        """Batch ``token`` is on the stream from id ``first``: if its
        publishing seemed to fail, it was accepted after all."""
        if not self._unsure:
            return
        self._unsure.pop(token, None)
        if self.writer is not None:
            self.writer.accepted(token)

    @defer.inlineCallbacks
    def check_unsure(self, commands: Any) -> Any:
        """After a reconnection: batches not on the stream by its current end
        were not accepted. ``commands``: the connected Redis protocol, or
        None."""
        tokens = set(self._unsure)
        if commands is None:
            raise ClusterUnavailable("not connected to Redis")
        last = yield commands.command(
            encode("XREVRANGE", scripts.KEYS[2], "+", "-", "COUNT", "1")
        )
        end = stream_id(last[0][0]) if last else (0, 0)
        self._unsure_checks.append((end, tokens))
        self.caught_up()

    def caught_up(self) -> None:
        """The reader has read on: refuse the unsure batches it is past."""
        if not self._unsure_checks:
            return
        position = stream_id(self._stream.position)
        while self._unsure_checks and self._unsure_checks[0][0] <= position:
            _, tokens = self._unsure_checks.pop(0)
            for token in tokens:
                drafts = self._unsure.pop(token, None)
                self._own.pop(token, None)
                if self.writer is not None:
                    self.writer.not_accepted(token)
                if drafts is not None:
                    self._refuse(
                        drafts, Failure(ClusterUnavailable("Redis did not answer"))
                    )

    def _refuse(self, drafts: list[ChatMessage], failure: Failure) -> None:
        error: Exception
        if failure.check(psycopg.Error, adbapi.ConnectionLost, StoreError):
            # The database refused it: the sender hears STORE_UNAVAILABLE.
            error = StoreError(failure.getErrorMessage())
        else:
            error = ClusterUnavailable(failure.getErrorMessage())
        self._refused(drafts, Failure(error))
