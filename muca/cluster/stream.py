"""Following the cluster's stream: what happens in the room (joins, leaves,
messages) is one Redis stream, read by every node from its last position
on a connection of its own, one blocking read at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.cluster import scripts
from muca.cluster.entries import Entry, decode
from muca.cluster.redisclient import connected, encode_arguments

# XREAD waits this long for new entries (ms); its reply timeout adds margin.
READ_BLOCK_MS = 1000
READ_COUNT = 1000

# The cluster's log lines keep the one namespace they had in one module.
log = Logger(namespace="muca.cluster.redisbus")


def stream_id(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a comparable pair."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


class StreamReader:
    """Reads the stream's entries after :attr:`position` and hands each to
    ``apply`` (decoded: :mod:`muca.cluster.entries`; entries of a kind this
    node does not know are passed over), then calls ``caught_up`` once per read.

    It reads once :attr:`following` is set (the bus has loaded the registry
    and knows where to read from) and its connection is up; a read whose
    :meth:`read_from` came after it was sent is not applied.
    """

    def __init__(
        self,
        clock: IReactorTime,
        apply: Callable[[Entry], None],
        caught_up: Callable[[], None],
    ) -> None:
        self.clock = clock
        self._apply = apply
        self._caught_up = caught_up
        #: The id of the last entry applied.
        self.position = "0-0"
        self.following = False
        self._generation = 0
        self._connection: Any = None
        self._running = False

    def read_from(self, position: str) -> None:
        """Read on after ``position``; a read under way is dropped."""
        self.position = position
        self._generation += 1

    def start(self, connection: Any) -> None:
        """Follow the stream on ``connection`` (a Redis connection factory)."""
        self._connection = connection
        self._running = True
        self._read()

    def stop(self) -> None:
        self._running = False

    def _read(self) -> None:
        """Ask for the entries after our position (one read at a time)."""
        if not self._running:
            return
        protocol = connected(self._connection)
        if not self.following or protocol is None:
            self.clock.callLater(0.1, self._read)
            return
        d = protocol.command(_XREAD + encode_arguments([self.position]))
        d.addCallbacks(self._entries_read, self._read_failed, (self._generation,))

    def _entries_read(self, reply: Any, generation: int) -> None:
        try:
            if generation == self._generation and reply:
                self._apply_entries(reply[0][1])
        finally:
            self._read()

    def _apply_entries(self, entries: list[Any]) -> None:
        for entry_id, fields in entries:
            self.position = entry_id
            try:
                entry = decode(dict(zip(fields[::2], fields[1::2], strict=True)))
                if entry is not None:
                    self._apply(entry)
            except Exception:
                log.failure("cluster: bad stream entry {id}", id=entry_id)
        self._caught_up()

    def _read_failed(self, failure: Failure) -> None:
        # The connection comes back by itself; read again a little later.
        if self._running:
            log.info(
                "cluster: reading the stream: {error}",
                error=failure.getErrorMessage(),
            )
            self.clock.callLater(0.2, self._read)


# XREAD of the stream, but for the position it reads after (its 8th argument).
_XREAD = b"*8\r\n" + encode_arguments(
    [
        "XREAD",
        "COUNT",
        str(READ_COUNT),
        "BLOCK",
        str(READ_BLOCK_MS),
        "STREAMS",
        scripts.KEYS[2],
    ]
)
