"""The history a client reads back: the replay at ``JOIN`` and ``HISTORY
BEFORE``.

How a newcomer gets its history: a client joining with the ``history``
capability (``SINCE`` or not) has its replay read from the store once its
``ACK`` is out (:meth:`Replays.start`) and written once its first ``LIST``
is out (:meth:`Replays.listed`). Live messages for it meanwhile are held
behind the replay, then written once each, in id order, with it
(:meth:`Replays.live`). A cluster's store can have a message before this
node's bus delivers it: a member whose replay had it does not get it again
live. ``HISTORY BEFORE`` is :meth:`Replays.scroll_back`.

Both are written as the peer reads (``IChatClient.stream``, which every
``muca.server.connection.ChatConnection`` has from
``muca.server.backpressure.SlowReaderOutput``): the history is read a page
at a time (``muca.server.pages``), the next page only once the connection
took the last one, and what is held for the member meanwhile counts against
its outbound limits.

The node (``muca.server.node.ChatFactory``) owns a :class:`Replays` and is
known here only through the small :class:`ReplayNode` interface.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.protocol.messages import (
    ALL,
    BAD_COMMAND,
    HISTORY,
    MAX_SINCE,
    STORE_UNAVAILABLE,
    ChatMessage,
    History,
    Join,
    error_payload,
    history_payload,
)
from muca.server.pages import HistoryPages
from muca.server.room import Member, Room
from muca.store.base import MessageStore
from muca.store.sql import NO_UPPER_BOUND

# Messages replayed at a JOIN with the history capability.
DEFAULT_HISTORY_REPLAY = 50

log = Logger()


class ReplayNode(typing.Protocol):
    """What the replays need of the node they belong to."""

    room: Room
    store: MessageStore | None
    #: The id of the last message the bus delivered here.
    last_delivered: int

    @property
    def private_history(self) -> bool:
        """Private and group messages are read back (``--auth``)."""


#: Bytes a held message is counted as besides its text.
HELD_OVERHEAD = 100

Objects = tuple[list[dict[str, Any]], bool]


@dataclass(eq=False)
class Replay:
    """A newcomer's history on its way: live messages for it wait in
    ``held`` until its first ``LIST`` is out and all of ``pages`` is
    written."""

    member: Member
    pages: HistoryPages
    held: list[ChatMessage] = field(default_factory=list)
    planned: bool = False
    listed: bool = False
    failed: bool = False


def _failed(failure: Failure, replay: Replay) -> None:
    """The store could not read a replay: logged, and it ends with an error."""
    log.error(
        "muca: cannot read the history of {uid!r}: {reason}",
        uid=replay.member.uid,
        reason=failure.getErrorMessage(),
    )
    replay.failed = True


def _held_size(message: ChatMessage) -> int:
    return len(message.text) + HELD_OVERHEAD


class Replays:
    """The node's replays on their way, and the members whose replay went
    past the last message delivered here."""

    def __init__(
        self, node: ReplayNode, history_replay: int = DEFAULT_HISTORY_REPLAY
    ) -> None:
        """``history_replay`` messages are replayed at a ``JOIN`` without
        ``SINCE``."""
        self.node = node
        self.history_replay = history_replay
        # Newcomers whose replay is on its way (see Replay).
        self._replays: dict[Member, Replay] = {}
        # Newcomers whose replay went past the last message delivered here:
        # the newest id they have (see _not_replayed).
        self._replayed: dict[Member, int] = {}

    def start(self, member: Member, join: Join) -> None:
        """The ``ACK`` is out: start the replay a history client asked for.

        The replay is read now and written once the member's first ``LIST``
        is out; what is delivered to it meanwhile waits behind the replay.
        """
        store = self.node.store
        if store is None or HISTORY not in join.caps:
            return
        private = self.node.private_history
        if join.since is not None:
            pages = HistoryPages(
                store, member.uid, private, join.since, NO_UPPER_BOUND, MAX_SINCE
            )
        else:
            pages = HistoryPages(
                store, member.uid, private, 0, NO_UPPER_BOUND, self.history_replay
            )
        replay = Replay(member, pages)
        self._replays[member] = replay
        pages.plan().addCallbacks(
            self._replay_planned, self._replay_failed, (replay,), None, (replay,)
        )

    def listed(self, members: Iterable[Member]) -> None:
        """These members' first ``LIST`` is out: their replays may follow."""
        if self._replays:
            for member in members:
                replay = self._replays.get(member)
                if replay is not None and not replay.listed:
                    replay.listed = True
                    self._finish_replay(replay)

    def left(self, member: Member) -> None:
        """``member``'s connection has gone: a replay on its way has nobody
        to go to any more."""
        self._replays.pop(member, None)
        self._replayed.pop(member, None)

    def _replay_planned(self, _: None, replay: Replay) -> None:
        replay.planned = True
        self._finish_replay(replay)

    def _replay_failed(self, failure: Failure, replay: Replay) -> None:
        _failed(failure, replay)
        replay.planned = True
        self._finish_replay(replay)

    def _finish_replay(self, replay: Replay) -> None:
        """Listed and planned: write the replay as the member reads, then
        what was held, once each, in id order (see :meth:`_replay_page`)."""
        if not replay.listed or not replay.planned:
            return
        member = replay.member
        if self._replays.get(member) is not replay:
            return  # the member left meanwhile
        if self.node.room.member(member.uid) is not member:
            self._replays.pop(member, None)
            return
        member.connection.stream(_ReplaySource(self, replay))

    def _replay_page(
        self, messages: list[ChatMessage] | None, replay: Replay
    ) -> Objects:
        """The next page of a replay, with the held messages it passed."""
        if messages is None or replay.failed:
            return self._end_replay(replay)
        upto = replay.pages.cursor
        replayed = replay.pages.ids
        held = replay.held
        passed = 0
        while passed < len(held) and held[passed].id <= upto:
            passed += 1
        # A held message older than the page's newest one (one the member
        # may not read back, e.g. a private one without --auth) goes in its
        # place, so that the member sees ids increasing; one the replay has
        # is not written twice.
        early = [
            (m.id, self._live_payload(replay.member, m))
            for m in held[:passed]
            if m.id not in replayed
        ]
        if passed:
            replay.member.connection.hold_bytes(
                -sum(_held_size(m) for m in held[:passed])
            )
            del held[:passed]
        merged = sorted(
            [(m.id, m.history_payload()) for m in messages] + early,
            key=lambda pair: pair[0],
        )
        return [obj for _, obj in merged], False

    def _end_replay(self, replay: Replay) -> Objects:
        """The replay's last page: its end, then what was held."""
        member = replay.member
        if self._replays.get(member) is replay:
            del self._replays[member]
        if replay.failed:
            end = error_payload(
                STORE_UNAVAILABLE, "the history cannot be read now", "JOIN"
            )
        else:
            end = history_payload(replay.pages.more)
        held = replay.held
        member.connection.hold_bytes(-sum(_held_size(m) for m in held))
        objs = [end, *(self._live_payload(member, m) for m in held)]
        replay.held = []
        last = replay.pages.top
        if not replay.failed and last > self.node.last_delivered:
            # Read back before the bus delivered it here (a cluster's store
            # has a message before every node does): not again live.
            self._replayed[member] = last
        return objs, True

    def _replay_broke(self, failure: Failure, replay: Replay) -> Objects:
        _failed(failure, replay)
        return self._end_replay(replay)

    def scroll_back(self, member: Member, request: History) -> None:
        """Answer ``HISTORY BEFORE``: older messages, then ``HISTORY MORE``."""
        connection = member.connection
        store = self.node.store
        if store is None:
            connection.send_error(
                BAD_COMMAND, "this server keeps no history", "HISTORY"
            )
            return
        pages = HistoryPages(
            store,
            member.uid,
            self.node.private_history,
            0,
            request.before,
            request.limit,
        )
        connection.stream(_ScrollBack(pages))

    # Live messages

    def _live_payload(self, member: Member, message: ChatMessage) -> dict[str, Any]:
        """A held message as it would have gone out live: a room's
        broadcast with ``ROOM`` for a rooms client."""
        obj = message.payload()
        if member.rooms and message.kind == ALL:
            obj["ROOM"] = message.room or self.node.room.default.name
        return obj

    def live(self, members: list[Member], message: ChatMessage) -> list[Member]:
        """The members to write ``message`` to now: it is held for those
        whose replay is on its way, and left out for those whose replay had
        it already."""
        if self._replays:
            members = [m for m in members if not self._hold(m, message)]
        if self._replayed:
            members = self._not_replayed(members, message.id)
        return members

    def passed(self, upto: int) -> None:
        """Messages up to ``upto`` went by (some with no recipient here)."""
        replayed = self._replayed
        if replayed and upto >= max(replayed.values()):
            replayed.clear()

    def _not_replayed(self, members: Iterable[Member], ident: int) -> list[Member]:
        """Leave out the members whose replay had this message already: a
        cluster's store can show a message before the bus delivers it here."""
        replayed = self._replayed
        kept = []
        for member in members:
            upto = replayed.get(member)
            if upto is None:
                kept.append(member)
            elif ident > upto:
                del replayed[member]
                kept.append(member)
        if ident >= max(replayed.values(), default=0):
            replayed.clear()
        return kept

    def _hold(self, member: Member, message: ChatMessage) -> bool:
        replay = self._replays.get(member)
        if replay is None:
            return False
        replay.held.append(message)
        # Counted against the member's limits: a member that does not read
        # its replay does not make the server hold the room's traffic.
        member.connection.hold_bytes(_held_size(message))
        return True


class _ReplaySource:
    """A replay at ``JOIN`` as a stream's pages (see ``SlowReaderOutput.stream``)."""

    #: One per connection: not charged to the rate limit.
    charged = False

    def __init__(self, replays: Replays, replay: Replay) -> None:
        self._replays = replays
        self._replay = replay

    def next_page(self) -> Deferred[Objects]:
        """The next page of the replay, its end last."""
        replay, replays = self._replay, self._replays
        if replay.failed:
            return succeed(replays._end_replay(replay))
        return replay.pages.next().addCallbacks(
            replays._replay_page,
            replays._replay_broke,
            (replay,),
            None,
            (replay,),
        )


class _ScrollBack:
    """The answer to ``HISTORY BEFORE`` as a stream's pages: planned when
    its turn comes, then its messages, then ``HISTORY MORE``."""

    #: Paid for by its size: a loop of requests is paced like frames as
    #: large as the answers.
    charged = True

    def __init__(self, pages: HistoryPages) -> None:
        self._pages = pages
        self._planned = False

    def next_page(self) -> Deferred[Objects]:
        """The next page of the answer."""
        if self._planned:
            reading = self._pages.next()
        else:
            self._planned = True
            reading = self._pages.plan().addCallback(lambda _: self._pages.next())
        return reading.addCallbacks(self._page, self._failed)

    def _page(self, messages: list[ChatMessage] | None) -> Objects:
        if messages is None:
            return [history_payload(self._pages.more)], True
        return [m.history_payload() for m in messages], False

    def _failed(self, failure: Failure) -> Objects:
        log.error(
            "muca: cannot read history: {reason}", reason=failure.getErrorMessage()
        )
        error = error_payload(
            STORE_UNAVAILABLE, "the history cannot be read now", "HISTORY"
        )
        return [error], True
