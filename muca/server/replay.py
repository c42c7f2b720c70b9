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

The node (``muca.server.node.ChatFactory``) owns a :class:`Replays` and is
known here only through the small :class:`ReplayNode` interface.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from dataclasses import dataclass, field

from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.protocol.messages import (
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
from muca.server.room import Member, Room
from muca.store.base import MessageStore, Page

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


@dataclass(eq=False)
class Replay:
    """A newcomer's history on its way: live messages for it wait in
    ``held`` until its first ``LIST`` is out and ``page`` has been read."""

    member: Member
    held: list[ChatMessage] = field(default_factory=list)
    page: Page | None = None
    listed: bool = False
    failed: bool = False


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
        replay = Replay(member)
        self._replays[member] = replay
        private = self.node.private_history
        if join.since is not None:
            reading = store.since(member.uid, private, join.since, MAX_SINCE)
        else:
            reading = store.latest(member.uid, private, self.history_replay)
        reading.addCallbacks(
            self._replay_read, self._replay_failed, (replay,), None, (replay,)
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

    def _replay_read(self, page: Page, replay: Replay) -> None:
        replay.page = page
        self._finish_replay(replay)

    def _replay_failed(self, failure: Failure, replay: Replay) -> None:
        log.error(
            "muca: cannot read the history of {uid!r}: {reason}",
            uid=replay.member.uid,
            reason=failure.getErrorMessage(),
        )
        replay.failed = True
        replay.page = Page()
        self._finish_replay(replay)

    def _finish_replay(self, replay: Replay) -> None:
        """Write the replay, then what was held, once each, in id order."""
        if not replay.listed or replay.page is None:
            return
        member = replay.member
        if self._replays.pop(member, None) is not replay:
            return  # the member left meanwhile
        if self.node.room.member(member.uid) is not member:
            return
        page = replay.page
        replayed = {m.id for m in page.messages}
        last = page.messages[-1].id if page.messages else 0
        held = [m for m in replay.held if m.id not in replayed]
        # A held message older than the newest replayed one (one the member
        # may not read back, e.g. a private one without --auth) goes in its
        # place, so that the member sees ids increasing.
        early = [(m.id, m.payload()) for m in held if m.id < last]
        late = [m.payload() for m in held if m.id > last]
        merged = sorted(
            [(m.id, m.history_payload()) for m in page.messages] + early,
            key=lambda pair: pair[0],
        )
        objs = [obj for _, obj in merged]
        if replay.failed:
            objs.append(
                error_payload(
                    STORE_UNAVAILABLE, "the history cannot be read now", "JOIN"
                )
            )
        else:
            objs.append(history_payload(page.more))
        objs.extend(late)
        member.connection.send_many(objs)
        if last > self.node.last_delivered:
            # Read back before the bus delivered it here (a cluster's store
            # has a message before every node does): not again live.
            self._replayed[member] = last

    def scroll_back(self, member: Member, request: History) -> None:
        """Answer ``HISTORY BEFORE``: older messages, then ``HISTORY MORE``."""
        connection = member.connection
        store = self.node.store
        if store is None:
            connection.send_error(
                BAD_COMMAND, "this server keeps no history", "HISTORY"
            )
            return
        reading = store.before(
            member.uid, self.node.private_history, request.before, request.limit
        )

        def read(page: Page) -> None:
            if self.node.room.member(member.uid) is member:
                objs = [m.history_payload() for m in page.messages]
                connection.send_many([*objs, history_payload(page.more)])

        def failed(failure: Failure) -> None:
            log.error(
                "muca: cannot read history: {reason}",
                reason=failure.getErrorMessage(),
            )
            if self.node.room.member(member.uid) is member:
                connection.send_error(
                    STORE_UNAVAILABLE, "the history cannot be read now", "HISTORY"
                )

        reading.addCallbacks(read, failed)

    # Live messages

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
        return True
