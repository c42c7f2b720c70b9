"""History read back in pages, so that what a replay or a scroll-back holds
in memory is one page, whatever its length.

The store answers with the newest messages below an id (``before``), newest
page first, while a reader needs them oldest first. :class:`HistoryPages`
therefore first walks the history from the newest end (:meth:`plan`), reading
:data:`PLAN_PAGE` messages at a time and keeping of each page only the ids
and where it splits into pages of at most :data:`PAGE_BYTES` of text (the
pages themselves too while all kept stay under :data:`KEEP_BYTES`, as for
ordinary chat, which is then read once); then it hands the pages over oldest
first (:meth:`next`), reading again those it did not keep. A message pruned
meanwhile is simply missing; none comes twice or out of order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twisted.internet.defer import Deferred, succeed

from muca.protocol.messages import ChatMessage
from muca.store.base import DEFAULT_ROOMS, MessageStore, Page

#: Messages read at once while planning.
PLAN_PAGE = 50
#: Text bytes of one page handed over (a longer message is a page alone).
PAGE_BYTES = 64 * 1024
#: Text bytes of the pages kept from planning instead of being read again.
KEEP_BYTES = 256 * 1024


@dataclass(slots=True)
class _Range:
    """One page to hand over: ``count`` messages with ids from ``low`` to
    ``high``; ``messages`` when kept from planning."""

    low: int
    high: int
    count: int
    messages: list[ChatMessage] | None


class HistoryPages:
    """The newest ``count`` messages ``reader`` may see with an id above
    ``lower`` and below ``upper``, oldest first, a page at a time: the
    broadcasts of ``rooms`` (room keys, ``""`` the default room) and, when
    ``private``, its own private and group messages."""

    def __init__(
        self,
        store: MessageStore,
        reader: str | None,
        private: bool,
        lower: int,
        upper: int,
        count: int,
        rooms: Sequence[str] = DEFAULT_ROOMS,
    ) -> None:
        self._store = store
        self._rooms = tuple(rooms)
        self._reader = reader
        self._private = private
        self._lower = lower
        self._upper = upper
        self._count = count
        #: Older messages than these exist (above ``lower``), once planned.
        self.more = False
        #: Every id of these messages, once planned.
        self.ids: set[int] = set()
        #: The newest id among them (0: none), once planned.
        self.top = 0
        #: The newest id handed over so far.
        self.cursor = lower
        self._ranges: list[_Range] = []  # newest first while planning
        self._kept = 0

    def _before(self, upper: int, limit: int) -> Deferred[Page]:
        return self._store.before(
            self._reader, self._private, upper, limit, rooms=self._rooms
        )

    def plan(self) -> Deferred[None]:
        """Find the pages; fires once :meth:`next` may be called."""
        if self._count <= 0:
            return succeed(None)
        return self._plan_from(self._upper)

    def _plan_from(self, upper: int) -> Deferred[None]:
        wanted = min(PLAN_PAGE, self._count - len(self.ids))
        return self._before(upper, wanted).addCallback(self._planned, wanted)

    def _planned(self, page: Page, wanted: int) -> Deferred[None] | None:
        messages = [m for m in page.messages if m.id > self._lower]
        below_lower = len(messages) < len(page.messages)
        if messages:
            if not self.ids:
                self.top = messages[-1].id
            self.ids.update(m.id for m in messages)
            self._split(messages)
        if below_lower or not page.more:
            self.more = False
        elif len(self.ids) < self._count:
            return self._plan_from(messages[0].id)
        elif self._lower == 0:
            self.more = True
        else:
            # Full, and older messages exist: are any above lower?
            return self._before(messages[0].id, 1).addCallback(self._more_above)
        self._ranges.reverse()
        return None

    def _more_above(self, page: Page) -> None:
        self.more = any(m.id > self._lower for m in page.messages)
        self._ranges.reverse()

    def _split(self, messages: list[ChatMessage]) -> None:
        """Cut messages (oldest first, older than those planned so far) into
        pages; added newest first."""
        pages: list[list[ChatMessage]] = [[]]
        size = 0
        for message in messages:
            length = len(message.text)
            if pages[-1] and size + length > PAGE_BYTES:
                pages.append([])
                size = 0
            pages[-1].append(message)
            size += length
        for group in reversed(pages):
            length = sum(len(m.text) for m in group)
            keep = self._kept + length <= KEEP_BYTES
            if keep:
                self._kept += length
            self._ranges.append(
                _Range(group[0].id, group[-1].id, len(group), group if keep else None)
            )

    def next(self) -> Deferred[list[ChatMessage] | None]:
        """The next page, oldest first (``None``: there is no more)."""
        if not self._ranges:
            return succeed(None)
        taken = self._ranges.pop(0)
        after = self.cursor
        self.cursor = taken.high
        if taken.messages is not None:
            self._kept -= sum(len(m.text) for m in taken.messages)
            return succeed(taken.messages)

        def within(page: Page) -> list[ChatMessage]:
            return [m for m in page.messages if max(taken.low - 1, after) < m.id]

        return self._before(taken.high + 1, taken.count).addCallback(within)
