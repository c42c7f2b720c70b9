"""The bus: the one path by which accepted messages and roster changes
reach the connections of this process (and, in a cluster, of the others).

A node hands the bus drafts of the messages it accepted; the bus gives them
their room-wide ids, in the order accepted, and delivers them to every
node attached to it, this one included, in id order. Roster changes take
the same road. :class:`LocalBus` is the single-process bus, the default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.protocol.messages import PRESENCE_DELTA, ROOMS, ChatMessage, Join
from muca.server.room import Member, Room
from muca.store.base import MessageStore

log = Logger()


class ClusterUnavailable(Exception):
    """A cluster's bus cannot reach its broker: nothing was accepted."""


class BusListener(Protocol):
    """What a bus delivers to: one node's own connections."""

    def deliver(self, messages: Sequence[ChatMessage]) -> None:
        """Write these accepted messages, in id order, to the recipients
        connected here."""

    def roster_changed(self) -> None:
        """Somebody joined or left: a roster update is due."""

    def remember(self, uid: str, nickname: str) -> None:
        """``uid`` joined or left as ``nickname`` on another node: a known
        user (offline delivery, ``KNOWN``)."""

    def passed(self, upto: int) -> None:
        """Every message up to id ``upto`` went by, including those a cluster
        did not deliver here because none of their recipients is here."""

    def not_accepted(self, messages: Sequence[ChatMessage], failure: Failure) -> None:
        """These messages, published here, were refused: none of them was
        delivered."""


class Bus(Protocol):
    """The road from acceptance to every node's connections."""

    def attach(self, listener: BusListener) -> None:
        """Deliver to ``listener`` from now on."""

    def publish(
        self, drafts: Sequence[ChatMessage]
    ) -> Deferred[list[ChatMessage]] | None:
        """Give ``drafts`` their ids and deliver them everywhere.

        The bus tells its listeners what became of them: ``deliver`` (on
        every node), or ``not_accepted`` (on this one; then nothing of them
        was delivered). It returns the accepted messages, a Deferred that
        has fired, when it delivered them at once (no store, no cluster),
        else None.
        """

    def roster_changed(self) -> None:
        """Tell every node that somebody joined or left."""

    def join(
        self, room: Room, connection: Any, join: Join
    ) -> Member | Deferred[Member]:
        """Add a connection to the room, at once or once the bus agrees;
        refusals raise (or fail with) :class:`JoinRefused`."""

    def leave(self, room: Room, member: Member) -> bool:
        """Remove a member; False when it was not (or no longer) here."""

    def unavailable(self) -> str | None:
        """Why a join would be refused (or held) now, for ``/healthz``
        (``cluster: ...``, ``store: ...``), or None."""


class LocalBus:
    """The bus of a server that runs alone: ids from a counter.

    Without a store, delivery is a direct call, so that a message reaches
    the recipients' queues in the same reactor turn that accepted it. With
    a store (``muca.store``), messages are stored before they are delivered:
    what is published during one reactor turn is one append, at the end of
    the turn, delivered in id order once the store has it (the SQLite store
    spools it at once; PostgreSQL commits the appends that wait for a
    transaction together). When an append fails, nothing of it is delivered
    and the listeners hear of it (``not_accepted``): a publish with a store
    returns None, which spares a Deferred per message.
    """

    def __init__(
        self,
        clock: IReactorTime,
        last_id: int = 0,
        store: MessageStore | None = None,
        at_turn_end: Callable[[Callable[[], object]], None] | None = None,
    ) -> None:
        """``last_id``: the highest id given before (ids keep increasing);
        ``store``: where messages are kept (opened already), or ``None``;
        ``at_turn_end``: runs a callable at the end of the reactor turn (a
        node's ``Outbox.at_flush``, so that a turn's messages are stored and
        written out in one pass; by default a ``callLater(0)`` on ``clock``).
        """
        self.store = store
        self.last_id = last_id if store is None else max(last_id, store.last_id())
        self._listeners: list[BusListener] = []
        if at_turn_end is None:
            at_turn_end = lambda work: clock.callLater(0, work)  # noqa: E731
        self._at_turn_end = at_turn_end
        # This turn's accepted messages, waiting for the turn's append.
        self._turn: list[ChatMessage] = []
        #: True from a failed append until one succeeds (logged once each way).
        self.failing = False
        self._said_failing = False

    def attach(self, listener: BusListener) -> None:
        self._listeners.append(listener)

    def publish(
        self, drafts: Sequence[ChatMessage]
    ) -> Deferred[list[ChatMessage]] | None:
        first = self.last_id + 1
        # The constructor, not dataclasses.replace: this runs per message and
        # replace costs several times as much.
        accepted = [
            ChatMessage(
                first + n,
                d.ts,
                d.sender,
                d.kind,
                d.recipients,
                d.text,
                d.nickname,
                d.room,
            )
            for n, d in enumerate(drafts)
        ]
        self.last_id += len(accepted)
        if self.store is None:
            self._deliver(accepted)
            return succeed(accepted)
        if not self._turn:
            self._at_turn_end(self._append_turn)
        self._turn += accepted
        return None

    def _append_turn(self) -> None:
        assert self.store is not None
        turn, self._turn = self._turn, []
        self.store.append(turn).addCallbacks(
            self._stored, self._not_stored, (turn,), None, (turn,)
        )

    def _stored(self, _: object, turn: list[ChatMessage]) -> None:
        if self.failing:
            self.failing = False
            if self._said_failing:
                log.info("muca: the message database works again")
        self._deliver(turn)

    def _not_stored(self, failure: Failure, turn: list[ChatMessage]) -> None:
        if not self.failing:
            self.failing = True
            # Once per outage, not once per message; not at all when the
            # store logs this outage itself.
            self._said_failing = self.store is None or self.store.unavailable() is None
            if self._said_failing:
                log.error(
                    "muca: cannot store messages, refusing them until the "
                    "message database works again: {reason}",
                    reason=failure.getErrorMessage(),
                )
        for listener in self._listeners:
            listener.not_accepted(turn, failure)

    def _deliver(self, accepted: list[ChatMessage]) -> None:
        for listener in self._listeners:
            listener.deliver(accepted)

    def roster_changed(self) -> None:
        for listener in self._listeners:
            listener.roster_changed()

    def join(self, room: Room, connection: Any, join: Join) -> Member:
        """The room decides alone, at once; this bus carries rooms, so a
        client with the ``rooms`` capability has it here."""
        member = room.join(
            connection,
            join.nickname,
            join.uid,
            PRESENCE_DELTA in join.caps,
            rooms=ROOMS in join.caps,
        )
        self.roster_changed()
        return member

    def leave(self, room: Room, member: Member) -> bool:
        """Remove a member from the room, at once."""
        if not room.leave(member):
            return False
        self.roster_changed()
        return True

    def unavailable(self) -> str | None:
        """Joins never wait (the room is here); ``store: ...`` while the
        store refuses messages, for ``/healthz``."""
        reason = None if self.store is None else self.store.unavailable()
        return None if reason is None else f"store: {reason}"
