"""``SEARCH``: the messages a member may read back that match its words.

What a member may search is what it may read back (see ``docs/protocol.md``,
History and Rooms): the broadcasts of the rooms it is in (with ``ROOM``:
that room's, when it is in it or the room is public), and on a server that
authenticates users its own private and group messages (not with
``ROOM``). The store reads the matches on its own thread; the answer goes
out as the member reads, like a scroll-back (``IChatClient.stream``): the
``MSG`` items (``HIST`` and ``SEARCH`` true) newest first, in pages of at
most :data:`PAGE_BYTES` of text, then ``{"CMD": "SEARCH", "MORE": …}``.
"""

from __future__ import annotations

import typing
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.protocol.messages import (
    ALL,
    BAD_COMMAND,
    BAD_QUERY,
    NO_SUCH_ROOM,
    STORE_UNAVAILABLE,
    ChatMessage,
    Search,
    error_payload,
    search_payload,
)
from muca.server.room import Member, Room
from muca.store.base import DEFAULT_ROOM_KEY, MessageStore, Page
from muca.store.search import BadQuery, parse

log = Logger()

#: Text bytes of one page of an answer (a longer message is a page alone).
PAGE_BYTES = 64 * 1024

Objects = tuple[list[dict[str, Any]], bool]


class SearchNode(typing.Protocol):
    """What a search needs of the node."""

    room: Room
    store: MessageStore | None

    @property
    def private_history(self) -> bool:
        """Private and group messages are read back (``--auth``)."""


def search(node: SearchNode, member: Member, request: Search) -> None:
    """Answer ``SEARCH`` for ``member``: its matches, then ``SEARCH MORE``;
    or one ``ERROR`` (``BAD_QUERY``, ``NO_SUCH_ROOM``, ``BAD_COMMAND``
    without a history)."""
    connection = member.connection
    store = node.store
    if store is None:
        connection.send_error(BAD_COMMAND, "this server keeps no history", "SEARCH")
        return
    try:
        query = parse(request.query)
    except BadQuery as bad:
        connection.send_error(BAD_QUERY, str(bad), "SEARCH")
        return
    rooms = node.room.rooms
    private = node.private_history
    if request.room is None:
        keys = [_key(node, name) for name in member.entered]
    else:
        room = rooms.get(request.room)
        if room is None or (room.private and member.uid not in room):
            # A private room one is not in is no room one may read.
            connection.send_error(
                NO_SUCH_ROOM, f"there is no room {request.room!r}", "SEARCH"
            )
            return
        keys = [_key(node, room.name)]
        private = False
    reading = store.search(
        member.uid,
        private,
        query,
        keys,
        request.sender,
        request.before,
        request.limit,
    )
    connection.stream(_Answer(node, member, reading))


def _key(node: SearchNode, name: str) -> str:
    """The store's key of a room: ``""`` for the default room."""
    return DEFAULT_ROOM_KEY if name == node.room.rooms.default.name else name


class _Answer:
    """The answer to ``SEARCH`` as a stream's pages."""

    #: Paid for by its size, as a scroll-back is.
    charged = True

    def __init__(
        self, node: SearchNode, member: Member, reading: Deferred[Page]
    ) -> None:
        self._node = node
        self._member = member
        self._pages: list[list[dict[str, Any]]] | None = None
        self._more = False
        # The store's answer, kept until the stream's turn comes; or the
        # stream waiting for it.
        self._result: Page | Failure | None = None
        self._waiting: Deferred[Objects] | None = None
        reading.addBoth(self._read)

    def _read(self, result: Page | Failure) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is None:
            self._result = result
        else:
            waiting.callback(self._paged(result))

    def next_page(self) -> Deferred[Objects]:
        """The next page of the answer, ``SEARCH MORE`` last."""
        if self._pages is not None:
            return succeed(self._next())
        if self._result is not None:
            result, self._result = self._result, None
            return succeed(self._paged(result))
        self._waiting = Deferred()
        return self._waiting

    def _paged(self, result: Page | Failure) -> Objects:
        if isinstance(result, Failure):
            log.error(
                "muca: cannot search the history: {reason}",
                reason=result.getErrorMessage(),
            )
            error = error_payload(
                STORE_UNAVAILABLE, "the history cannot be searched now", "SEARCH"
            )
            return [error], True
        self._more = result.more
        self._pages = []
        page: list[dict[str, Any]] = []
        size = 0
        for message in reversed(result.messages):
            if page and size + len(message.text) > PAGE_BYTES:
                self._pages.append(page)
                page, size = [], 0
            page.append(self._payload(message))
            size += len(message.text)
        if page:
            self._pages.append(page)
        return self._next()

    def _next(self) -> Objects:
        if not self._pages:  # None only after a failure, which ended it
            return [search_payload(self._more)], True
        return self._pages.pop(0), False

    def _payload(self, message: ChatMessage) -> dict[str, Any]:
        obj = message.history_payload()
        # Told apart from a replay's or a scroll-back's items by clients.
        obj["SEARCH"] = True
        if self._member.rooms and message.kind == ALL:
            obj["ROOM"] = message.room or self._node.room.rooms.default.name
        return obj
