"""What one connection holds for a peer that reads slowly, and its limits.

:class:`SlowReaderOutput` is the part of every connection (the mixin of
``ChatConnection``) that takes the transport's producer signals (paused
past the transport's 64 KiB, resumed once drained), counts what waits for
the peer against ``--max-outbound`` and its share of the server's
``--max-outbound-total`` (the node's
:class:`~muca.server.limits.OutboundTotal`), writes streams (a history
replay, a scroll-back) a page at a time as the peer reads, and disconnects
a slow consumer. The rest of the connection (frames, commands, joins,
closing) is ``muca.server.connection``.
"""

from __future__ import annotations

import typing
from collections import deque
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from muca.protocol import messages
from muca.protocol.messages import SLOW_CONSUMER
from muca.server.output import Payload

#: Seconds a stream (a history replay, a scroll-back) may wait for its peer
#: to take what was written before the peer is a slow consumer.
STREAM_STALL = 10.0

log = Logger()


class PageSource(typing.Protocol):
    """What :meth:`SlowReaderOutput.stream` writes: objects a page at a time."""

    #: True for the answer to a request (``HISTORY``): its pages cost
    #: rate-limit tokens by their size (see ``PacedInput.charge_answer``).
    charged: bool

    def next_page(self) -> Deferred[tuple[list[dict[str, Any]], bool]]:
        """The next page of objects, and whether it is the last one."""


class SlowReaderOutput:
    """The output side of a connection that its peer may read slowly.

    Mixed into ``muca.server.connection.ChatConnection``, which provides
    ``factory`` (the node: ``config.max_outbound``, ``outbound``, ``shed``,
    ``clock``, ``counters``), ``_stream`` (the byte transport written to),
    ``framing``, ``peer``, ``_closing`` (reads nothing more) and
    ``_close_started`` (closed), ``_stop`` (read nothing more),
    ``_write_out`` (a write past what waits behind a stream),
    ``charge_answer`` (tokens of the rate limit for the bytes of an answer),
    ``close``, ``abort`` and ``_abort_call``.
    """

    factory: Any
    _stream: Any
    framing: Any
    peer: str
    _abort_call: IDelayedCall | None

    if typing.TYPE_CHECKING:
        _closing: bool
        _close_started: bool

        def _stop(self) -> None: ...

        def _write_out(self, data: bytes) -> None: ...

        def charge_answer(self, size: int) -> None: ...

        def close(self, grace: float | None = None) -> None: ...

        def abort(self) -> None: ...

    def _init_output(self) -> None:
        # Paused by the transport, and what was written meanwhile.
        self._paused = False
        self._queued = 0
        # Streams (see stream()): the sources still to write, in order, and
        # whether a page is being read; what else is written meanwhile waits
        # in _behind, behind them.
        self._sources: deque[PageSource] = deque()
        self._reading_page = False
        self._pulling = False
        self._behind: list[bytes] | None = None
        self._stall_call: IDelayedCall | None = None
        # Bytes held for this connection outside the transport: behind a
        # stream, or by the node (live messages held behind a replay).
        self._held_out = 0
        # Disconnected as a slow consumer.
        self._slow = False

    # IPushProducer: the transport's signals about our output

    def pauseProducing(self) -> None:
        """The transport's buffer is past its threshold."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The transport's buffer has drained: a stream may go on."""
        self._paused = False
        if self._queued:
            self.factory.outbound.add(-self._queued)
            self._queued = 0
        if self._stall_call is not None:
            if self._stall_call.active():
                self._stall_call.cancel()
            self._stall_call = None
        if self._sources:
            self._pull()

    def stopProducing(self) -> None:
        """The connection is going away."""
        self._stop()

    # Writing

    def write_bytes(self, data: bytes) -> None:
        """Write encoded bytes, minding the outbound limits: bytes written
        while the transport is paused count, and so does the write that
        pauses it (one turn's fan-out, a page of a stream)."""
        if self._paused:
            self._queued += len(data)
            if not self._count_waiting(len(data)):
                return
            self._stream.write(data)
            return
        self._stream.write(data)
        if self._paused and not self._closing:
            self._queued += len(data)
            self._count_waiting(len(data))

    @property
    def waiting_bytes(self) -> int:
        """Bytes waiting for this peer past the transport's own buffer:
        written while it was paused, held behind a stream, held by the node."""
        return self._queued + self._held_out

    def hold_bytes(self, count: int) -> None:
        """The node holds ``count`` more bytes for this connection (fewer
        when negative): they count against the outbound limits."""
        if self._close_started:
            return
        self._held_out += count
        self._count_waiting(count)

    def _count_waiting(self, count: int) -> bool:
        """``count`` more bytes wait for this peer: False when that makes it
        a slow consumer (of its own limit, or the largest one over the
        server's total), which is then being disconnected."""
        factory = self.factory
        over_total = factory.outbound.add(count)
        if count > 0 and self.waiting_bytes > factory.config.max_outbound:
            self._too_slow()
            return False
        if over_total:
            factory.shed()
        return not self._slow

    def _drop_output(self, keep_queued: bool = False) -> None:
        """Forget what waits for this peer (it is going): streams, what is
        held behind them, and their share of the server's total; with
        ``keep_queued``, what the transport holds stays counted (until the
        connection is gone: see :meth:`drop_now`)."""
        self._sources.clear()
        self._behind = None
        if self._stall_call is not None and self._stall_call.active():
            self._stall_call.cancel()
        self._stall_call = None
        dropped = self._held_out if keep_queued else self.waiting_bytes
        if dropped:
            self.factory.outbound.add(-dropped)
        self._held_out = 0
        if not keep_queued:
            self._queued = 0

    def drop_now(self) -> None:
        """Drop the connection now with all its buffers, and take them out
        of the server's total at once (the node's :meth:`Node.shed`, when
        the total is over its cap): a slow consumer in its grace period is
        not waited for."""
        if not self._closing:
            self.drop_slow("the server's memory for slow readers is taken")
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._drop_output()
        self.abort()

    def encode(self, objs: list[dict[str, Any]]) -> bytes:
        """These payloads as this connection's bytes, in its framing (a
        front-end whose wire is no MUCA framing, IRC's, translates them)."""
        framing = self.framing
        return b"".join(Payload(obj).for_framing(framing) for obj in objs)

    def stream(self, source: PageSource) -> None:
        """Write what ``source`` produces as the peer reads: a page at a
        time, the next one read only once the transport has taken the last
        one (is not paused). Streams go one after another, in the order
        given; what else is written to this connection meanwhile waits
        behind them, counted against the outbound limits. A peer that takes
        nothing for :data:`STREAM_STALL` seconds while a stream waits is a
        slow consumer."""
        if self._close_started:
            return
        self._sources.append(source)
        if self._behind is None:
            self._behind = []
        self._pull()

    def _pull(self) -> None:
        if self._pulling:
            return  # a page read at once: the loop below goes on
        self._pulling = True
        try:
            while self._sources and not self._reading_page and not self._closing:
                if self._paused:
                    if self._stall_call is None:
                        self._stall_call = self.factory.clock.callLater(
                            STREAM_STALL, self._stalled
                        )
                    return
                self._reading_page = True
                self._sources[0].next_page().addCallback(self._page_read).addErrback(
                    lambda failure: log.failure(
                        "streaming to {peer}", failure, peer=self.peer
                    )
                )
        finally:
            self._pulling = False

    def _page_read(self, result: tuple[list[dict[str, Any]], bool]) -> None:
        self._reading_page = False
        if self._closing or not self._sources:
            return
        objs, last = result
        source = self._sources.popleft() if last else self._sources[0]
        data = self.encode(objs)
        if data:
            self._write_out(data)
            if source.charged:
                self.charge_answer(len(data))
        if not self._sources and not self._closing:
            self._release_behind()
        self._pull()

    def _release_behind(self) -> None:
        """The streams are done: write what waited behind them."""
        behind, self._behind = self._behind, None
        if behind:
            data = b"".join(behind)
            self._held_out -= len(data)
            self.factory.outbound.add(-len(data))
            self._write_out(data)

    def _stalled(self) -> None:
        self._stall_call = None
        if self._paused and self._sources:
            self._too_slow(f"took nothing of a stream for {STREAM_STALL:g} s")

    def _too_slow(self, why: str | None = None) -> None:
        self.drop_slow(why or f"over {self.factory.config.max_outbound} bytes waiting")

    def drop_slow(self, why: str) -> bool:
        """Disconnect this peer as a slow consumer (``ERROR SLOW_CONSUMER``
        behind what it has not read, then close); False when it is already
        closing."""
        if self._closing:
            return False
        factory = self.factory
        log.info("disconnecting {peer}: slow consumer, {why}", peer=self.peer, why=why)
        self._stop()
        self._slow = True
        # What the transport holds counts until it is gone (after the grace
        # period, or at once if the server's total needs it: see drop_now).
        self._drop_output(keep_queued=True)
        factory.counters.slow_consumers += 1
        # Behind everything queued: it arrives only if the peer reads again
        # within the grace period.
        error = messages.error_payload(
            SLOW_CONSUMER, "you did not read fast enough; disconnecting"
        )
        self._stream.write(self.encode([error]))
        self.close()
        return True
