"""IRCv3 ``draft/chathistory`` on a room's history (MUCA's ``HISTORY`` with
``ROOM``).

The store reads one kind of page: the newest messages of a room below an
id (``MessageStore.before``). :class:`RoomHistory` answers every
``CHATHISTORY`` subcommand from it: the newest messages between two ids
are one page; the oldest after an id (``AFTER``, ``BETWEEN`` forwards) and
the id where a timestamp falls are found by bisecting ids, a page of at
most ``limit`` messages per step, so that no request reads more than
about 64 pages of at most :data:`MAX_LIMIT` messages, whatever the
history's size. Message times grow with their ids (the bus numbers
messages in the order it accepts them).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred

from muca.protocol.messages import ChatMessage
from muca.store.base import Page

#: The most messages one ``CHATHISTORY`` answers (ISUPPORT ``CHATHISTORY``).
MAX_LIMIT = 100
#: An id above every message.
NO_UPPER_BOUND = 2**63 - 1
#: The subcommands, and how many message references each takes.
SUBCOMMANDS = {"LATEST": 1, "BEFORE": 1, "AFTER": 1, "AROUND": 1, "BETWEEN": 2}


class BadQuery(Exception):
    """A ``CHATHISTORY`` line that asks for nothing this server can read:
    ``code`` is its ``FAIL`` code (``UNKNOWN_COMMAND``, ``INVALID_PARAMS``)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Ref:
    """A message reference: ``msgid=`` (``value`` an id), ``timestamp=``
    (``value`` in ms since the epoch), or ``*`` (``kind`` ``"*"``)."""

    kind: str
    value: int = 0


@dataclass(frozen=True, slots=True)
class Query:
    """One ``CHATHISTORY`` request."""

    subcommand: str
    target: str
    refs: tuple[Ref, ...]
    limit: int


def parse_timestamp(text: str) -> int:
    """``2026-12-08T00:17:46.123Z`` (ISO 8601, UTC) in ms since the epoch."""
    if not text.endswith("Z"):
        raise ValueError(text)
    moment = datetime.datetime.fromisoformat(text[:-1] + "+00:00")
    return int(moment.timestamp() * 1000 + 0.5)


def parse_ref(text: str, star: bool) -> Ref:
    """A reference parameter; ``*`` only where ``star`` allows it."""
    if text == "*" and star:
        return Ref("*")
    kind, _, value = text.partition("=")
    try:
        if kind == "msgid" and value.isdigit() and len(value) <= 18:
            return Ref("msgid", int(value))
        if kind == "timestamp":
            return Ref("timestamp", parse_timestamp(value))
    except (ValueError, OverflowError):
        pass
    raise BadQuery("INVALID_PARAMS", f"not a message reference: {text[:40]}")


def parse_query(params: list[str]) -> Query:
    """A ``CHATHISTORY`` line's parameters as a :class:`Query`."""
    subcommand = params[0].upper() if params else ""
    refs_wanted = SUBCOMMANDS.get(subcommand)
    if refs_wanted is None:
        raise BadQuery("UNKNOWN_COMMAND", "Unknown CHATHISTORY subcommand")
    if len(params) != 3 + refs_wanted:
        raise BadQuery("INVALID_PARAMS", "Wrong number of parameters")
    target = params[1]
    refs = tuple(
        parse_ref(text, subcommand == "LATEST") for text in params[2 : 2 + refs_wanted]
    )
    limit = params[-1]
    if not limit.isdigit() or int(limit) == 0 or len(limit) > 9:
        raise BadQuery("INVALID_PARAMS", f"not a message count: {limit[:20]}")
    return Query(subcommand, target, refs, min(int(limit), MAX_LIMIT))


class RoomHistory:
    """One room's history as ``CHATHISTORY`` reads it: ``before(upper,
    limit)`` is the store's page of the newest messages below ``upper``,
    ``top`` an id above every message known here."""

    def __init__(self, before: Callable[[int, int], Deferred[Page]], top: int) -> None:
        self._before = before
        self._top = top

    async def answer(self, query: Query) -> list[ChatMessage]:
        """The messages ``query`` asks for, oldest first."""
        limit = query.limit
        sub = query.subcommand
        ref = query.refs[0]
        if sub == "LATEST":
            lower = 0 if ref.kind == "*" else await self._after(ref)
            return await self.newest(lower, NO_UPPER_BOUND, limit)
        if sub == "BEFORE":
            return await self.newest(0, await self._below(ref), limit)
        if sub == "AFTER":
            return await self.oldest(await self._after(ref), NO_UPPER_BOUND, limit)
        if sub == "AROUND":
            # Half before it, the rest from it on (the message itself first).
            at = await self._below(ref)
            earlier = await self.newest(0, at, limit // 2)
            later = await self.oldest(at - 1, NO_UPPER_BOUND, limit - len(earlier))
            return earlier + later
        first, second = query.refs
        start, end = await self._key(first), await self._key(second)
        if start <= end:
            return await self.oldest(
                await self._after(first), await self._below(second), limit
            )
        return await self.newest(
            await self._after(second), await self._below(first), limit
        )

    async def _key(self, ref: Ref) -> int:
        """Where a reference stands among ids (to compare two)."""
        return ref.value if ref.kind == "msgid" else await self.first_at(ref.value)

    async def _below(self, ref: Ref) -> int:
        """The id the messages before ``ref`` are below."""
        return ref.value if ref.kind == "msgid" else await self.first_at(ref.value)

    async def _after(self, ref: Ref) -> int:
        """The id the messages after ``ref`` are above."""
        if ref.kind == "msgid":
            return ref.value
        return await self.first_at(ref.value + 1) - 1

    async def _page(self, lower: int, upper: int, limit: int) -> list[ChatMessage]:
        if limit <= 0 or upper <= lower + 1:
            return []
        page = await self._before(upper, limit)
        return [m for m in page.messages if m.id > lower]

    async def newest(self, lower: int, upper: int, limit: int) -> list[ChatMessage]:
        """The newest ``limit`` messages with ``lower < id < upper``."""
        return await self._page(lower, upper, limit)

    async def oldest(self, lower: int, upper: int, limit: int) -> list[ChatMessage]:
        """The oldest ``limit`` messages with ``lower < id < upper``: the
        lowest bound below which there are ``limit`` of them, bisected."""
        if limit <= 0:
            return []
        high = upper
        if high > self._top and len(await self._page(lower, self._top, limit)) >= limit:
            high = self._top
        page = await self._page(lower, high, limit)
        if len(page) < limit:
            return page
        low = lower + 1  # nothing below it above lower
        while high - low > 1:
            middle = (low + high) // 2
            if len(await self._page(lower, middle, limit)) >= limit:
                high = middle
            else:
                low = middle
        return await self._page(lower, high, limit)

    async def first_at(self, ms: int) -> int:
        """The id of the first message sent at ``ms`` or later (``top``
        when there is none), bisected."""

        async def reached(upper: int) -> bool:
            # The newest message below upper was sent at ms or later.
            page = await self._before(upper, 1)
            return bool(page.messages) and page.messages[-1].ts >= ms

        low, high = 1, self._top
        if not await reached(high):
            return high
        while high - low > 1:
            middle = (low + high) // 2
            if await reached(middle):
                high = middle
            else:
                low = middle
        return high - 1
