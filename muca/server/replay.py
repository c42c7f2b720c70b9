"""The history a client reads back: the replay at ``JOIN``, a room's replay
after ``ENTERED``, and ``HISTORY BEFORE``.

How a newcomer gets its history: a client joining with the ``history``
capability (``SINCE`` or not) has its replay read from the store once its
``ACK`` is out (:meth:`Replays.start`) and written once its first ``LIST``
is out (:meth:`Replays.listed`). Live messages for it meanwhile are held
behind the replay, then written once each, in id order, with it
(:meth:`Replays.live`). A cluster's store can have a message before this
node's bus delivers it: a member whose replay had it does not get it again
live. A room entered with the capability is replayed the same way once
that room's ``LIST`` is out (:meth:`Replays.entered`); a member's replays
are written in the order they were started. ``HISTORY BEFORE`` (with
``ROOM``: one room's) is :meth:`Replays.scroll_back`.

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
from collections.abc import Callable, Iterable
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
    NO_SUCH_ROOM,
    NOT_IN_ROOM,
    STORE_UNAVAILABLE,
    ChatMessage,
    History,
    Join,
    ProtocolError,
    error_payload,
    history_payload,
)
from muca.server.pages import HistoryPages
from muca.server.room import ChatRoom, Member, Room
from muca.store.base import DEFAULT_ROOM_KEY, MessageStore, Page
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
    """A replay on its way (a newcomer's history, or a room's after
    ``ENTERED``): live messages for its member wait in ``held`` until the
    ``LIST`` of the room ``after`` is out and all of ``pages`` is written.
    ``room``: the room it is of (its end says so), None for a ``JOIN``'s."""

    member: Member
    pages: HistoryPages
    after: str
    room: str | None = None
    held: list[ChatMessage] = field(default_factory=list)
    planned: bool = False
    listed: bool = False
    failed: bool = False
    #: Handed to the connection's stream (which writes it in turn).
    streaming: bool = False
    #: The ids of what its member sent meanwhile: it has them (it sent
    #: them), so the replay leaves them out if the store already shows them.
    own: set[int] = field(default_factory=set)


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
    past the last message delivered here.

    A member may have several replays on their way (its ``JOIN``'s, then
    those of rooms it entered): they are written in the order they were
    started, and what is delivered to it meanwhile waits behind the last
    of them."""

    def __init__(
        self, node: ReplayNode, history_replay: int = DEFAULT_HISTORY_REPLAY
    ) -> None:
        """``history_replay`` messages are replayed at a ``JOIN`` without
        ``SINCE``."""
        self.node = node
        self.history_replay = history_replay
        # Members whose replays are on their way, in the order started (see
        # Replay).
        self._replays: dict[Member, list[Replay]] = {}
        # Members whose replay went past the last message delivered here:
        # the ids they have that the bus has not delivered yet (see
        # _not_replayed).
        self._replayed: dict[Member, set[int]] = {}

    def start(self, member: Member, join: Join) -> None:
        """The ``ACK`` is out: start the replay a history client asked for.

        The replay is read now and written once the member's first ``LIST``
        is out; what is delivered to it meanwhile waits behind the replay.
        """
        store = self.node.store
        if store is None or HISTORY not in join.caps:
            return
        private = self.node.private_history
        # Every room it is in (a client without rooms: the default room).
        rooms = [self.room_key(room) for room in member.entered.values()]
        if join.since is not None:
            pages = HistoryPages(
                store,
                member.uid,
                private,
                join.since,
                NO_UPPER_BOUND,
                MAX_SINCE,
                rooms,
            )
        else:
            pages = HistoryPages(
                store,
                member.uid,
                private,
                0,
                NO_UPPER_BOUND,
                self.history_replay,
                rooms,
            )
        self._start(Replay(member, pages, self.node.room.default.name))

    def entered(self, member: Member, room: ChatRoom) -> None:
        """``ENTERED`` is out: with ``history``, that room's replay (its
        newest broadcasts, then ``HISTORY`` with ``ROOM``) follows the room's
        ``LIST``."""
        store = self.node.store
        if store is None or not member.history:
            return
        pages = HistoryPages(
            store,
            member.uid,
            False,
            0,
            NO_UPPER_BOUND,
            self.history_replay,
            (self.room_key(room),),
        )
        self._start(Replay(member, pages, room.name, room.name))

    def room_key(self, room: ChatRoom) -> str:
        """The store's name of a room: ``""`` for the default room."""
        return DEFAULT_ROOM_KEY if room is self.node.room.default else room.name

    def _start(self, replay: Replay) -> None:
        queue = self._replays.setdefault(replay.member, [])
        queue.append(replay)
        if len(queue) == 1:
            self._plan(replay)

    def _plan(self, replay: Replay) -> None:
        """Read where the replay's pages are. One replay of a member at a
        time: what the server holds for it is one replay's pages, however
        many rooms it enters at once."""
        replay.pages.plan().addCallbacks(
            self._replay_planned, self._replay_failed, (replay,), None, (replay,)
        )

    def listed(self, members: Iterable[Member], room: str) -> None:
        """These members' first ``LIST`` of ``room`` is out: their replays
        waiting for it may follow."""
        if self._replays:
            for member in members:
                for replay in self._replays.get(member, ()):
                    if replay.after == room and not replay.listed:
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
        """Listed and planned, the first of the member's replays: write it as
        the member reads, then what was held, once each, in id order (see
        :meth:`_replay_page`)."""
        member = replay.member
        queue = self._replays.get(member)
        if not queue or queue[0] is not replay:
            return  # the member left meanwhile, or an earlier one is first
        if self.node.room.member(member.uid) is not member:
            self._replays.pop(member, None)
            return
        if replay.streaming or not replay.listed or not replay.planned:
            return
        replay.streaming = True
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
        member = replay.member
        early = [
            (m.id, self._live_payload(member, m))
            for m in held[:passed]
            if m.id not in replayed
        ]
        if passed:
            member.connection.hold_bytes(-sum(_held_size(m) for m in held[:passed]))
            del held[:passed]
        own = replay.own
        merged = sorted(
            [
                (m.id, self._history_payload(member, m))
                for m in messages
                if m.id not in own
            ]
            + early,
            key=lambda pair: pair[0],
        )
        return [obj for _, obj in merged], False

    def _end_replay(self, replay: Replay) -> Objects:
        """The replay's last page: its end, then what was held."""
        member = replay.member
        queue = self._replays.get(member)
        if queue is not None and replay in queue:
            queue.remove(replay)
            if queue:
                # The next one's turn (it is written behind this one).
                self._plan(queue[0])
            else:
                del self._replays[member]
        if replay.failed:
            ref = "JOIN" if replay.room is None else "ENTER"
            end = error_payload(
                STORE_UNAVAILABLE, "the history cannot be read now", ref
            )
        else:
            end = history_payload(replay.pages.more, replay.room)
        held = replay.held
        member.connection.hold_bytes(-sum(_held_size(m) for m in held))
        objs = [end, *(self._live_payload(member, m) for m in held)]
        replay.held = []
        delivered = self.node.last_delivered
        if not replay.failed and replay.pages.top > delivered:
            # Read back before the bus delivered them here (a cluster's
            # store has a message before every node does): not again live.
            ahead = {ident for ident in replay.pages.ids if ident > delivered}
            self._replayed.setdefault(member, set()).update(ahead)
        return objs, True

    def _replay_broke(self, failure: Failure, replay: Replay) -> Objects:
        _failed(failure, replay)
        return self._end_replay(replay)

    def scroll_back(self, member: Member, request: History) -> None:
        """Answer ``HISTORY BEFORE``: older messages, then ``HISTORY MORE``.

        With ``ROOM``: that room's broadcasts (a private room's for its
        members only). Without: the user's own private and group messages,
        and the default room's broadcasts for a client without rooms.
        Refusals are the member's ``ERROR``."""
        connection = member.connection
        store = self.node.store
        if store is None:
            connection.send_error(
                BAD_COMMAND, "this server keeps no history", "HISTORY"
            )
            return
        private = self.node.private_history
        if request.room is not None and member.rooms:
            try:
                room = self._readable_room(member, request.room)
            except ProtocolError as error:
                connection.send_error(error.code, error.reason, error.ref)
                return
            rooms: tuple[str, ...] = (self.room_key(room),)
            private = False
            label: str | None = room.name
        elif member.rooms:
            rooms, label = (), None
        else:
            rooms, label = (DEFAULT_ROOM_KEY,), None
        pages = HistoryPages(
            store, member.uid, private, 0, request.before, request.limit, rooms
        )
        connection.stream(
            _ScrollBack(pages, lambda m: self._history_payload(member, m), label)
        )

    def room_reader(
        self, member: Member, name: str, ref: str
    ) -> tuple[Callable[[int, int], Deferred[Page]], int]:
        """``HISTORY ROOM``'s reading for a front-end that pages a room's
        history itself (IRC's ``CHATHISTORY``): the store's page of the
        newest messages of room ``name`` below an id, as ``member`` may
        read them, and an id above every message known here. Raises
        :class:`ProtocolError` (``ref`` its reference) as ``HISTORY``
        refuses."""
        store = self.node.store
        if store is None:
            raise ProtocolError(BAD_COMMAND, "this server keeps no history", ref)
        try:
            room = self._readable_room(member, name)
        except ProtocolError as error:
            raise ProtocolError(error.code, error.reason, ref) from None
        rooms = (self.room_key(room),)
        uid = member.uid

        def before(upper: int, limit: int) -> Deferred[Page]:
            return store.before(uid, False, upper, limit, rooms=rooms)

        return before, max(store.last_id(), self.node.last_delivered) + 1

    def _readable_room(self, member: Member, name: str) -> ChatRoom:
        """The room whose history ``member`` asks for: a public one, or a
        private one it is in."""
        room = self.node.room.rooms.get(name)
        if room is None:
            raise ProtocolError(NO_SUCH_ROOM, f"there is no room {name!r}", "HISTORY")
        if room.private and member.uid not in room:
            raise ProtocolError(
                NOT_IN_ROOM,
                f"the room {name!r} is private: only its members read its history",
                "HISTORY",
            )
        return room

    # Live messages

    def _live_payload(self, member: Member, message: ChatMessage) -> dict[str, Any]:
        """A held message as it would have gone out live: a room's
        broadcast with ``ROOM`` for a rooms client."""
        return self._tagged(member, message, message.payload())

    def _history_payload(self, member: Member, message: ChatMessage) -> dict[str, Any]:
        """A message read back (``HIST``), a room's broadcast with ``ROOM``
        for a rooms client."""
        return self._tagged(member, message, message.history_payload())

    def _tagged(
        self, member: Member, message: ChatMessage, obj: dict[str, Any]
    ) -> dict[str, Any]:
        if member.rooms and message.kind == ALL:
            obj["ROOM"] = message.room or self.node.room.default.name
        return obj

    def live(self, members: list[Member], message: ChatMessage) -> list[Member]:
        """The members to write ``message`` to now: it is held for those
        whose replay is on its way, and left out for those whose replay had
        it already."""
        if self._replays:
            members = [m for m in members if not self._hold(m, message)]
            sender = self.node.room.member(message.sender)
            if sender is not None:
                # Its own words, sent while its replays are on their way: not
                # shown to it again as history.
                for replay in self._replays.get(sender, ()):
                    replay.own.add(message.id)
        if self._replayed:
            members = self._not_replayed(members, message.id)
            # Delivered in id order: no older one comes any more.
            self.passed(message.id)
        return members

    def passed(self, upto: int) -> None:
        """Messages up to ``upto`` went by (some with no recipient here)."""
        replayed = self._replayed
        for member, ids in list(replayed.items()):
            ahead = {ident for ident in ids if ident > upto}
            if ahead:
                replayed[member] = ahead
            else:
                del replayed[member]

    def _not_replayed(self, members: Iterable[Member], ident: int) -> list[Member]:
        """Leave out the members whose replay had this message already: a
        cluster's store can show a message before the bus delivers it here."""
        replayed = self._replayed
        kept = []
        for member in members:
            ids = replayed.get(member)
            if ids is None or ident not in ids:
                kept.append(member)
                continue
            ids.discard(ident)
            if not ids:
                del replayed[member]
        return kept

    def _hold(self, member: Member, message: ChatMessage) -> bool:
        queue = self._replays.get(member)
        if not queue:
            return False
        # Behind the last of its replays: written after all of them.
        replay = queue[-1]
        replay.held.append(message)
        # Counted against the member's limits: a member that does not read
        # its replay does not make the server hold the room's traffic.
        member.connection.hold_bytes(_held_size(message))
        return True


class _ReplaySource:
    """A replay as a stream's pages (see ``SlowReaderOutput.stream``)."""

    def __init__(self, replays: Replays, replay: Replay) -> None:
        self._replays = replays
        self._replay = replay
        #: A JOIN's is one per connection, not charged to the rate limit; a
        #: room's is paid for by its size, as HISTORY is: a loop of ENTER
        #: and EXIT is paced like frames as large as the replays.
        self.charged = replay.room is not None

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

    def __init__(
        self,
        pages: HistoryPages,
        payload: Callable[[ChatMessage], dict[str, Any]],
        room: str | None = None,
    ) -> None:
        """``payload``: a message as this member gets it read back;
        ``room``: the room asked for (its end says so)."""
        self._pages = pages
        self._payload = payload
        self._room = room
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
            return [history_payload(self._pages.more, self._room)], True
        return [self._payload(m) for m in messages], False

    def _failed(self, failure: Failure) -> Objects:
        log.error(
            "muca: cannot read history: {reason}", reason=failure.getErrorMessage()
        )
        error = error_payload(
            STORE_UNAVAILABLE, "the history cannot be read now", "HISTORY"
        )
        return [error], True
