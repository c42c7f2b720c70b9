"""The bus: the one path by which accepted messages and roster changes
reach the connections of this process (and, in a cluster, of the others).

A node hands the bus drafts of the messages it accepted; the bus gives them
their room-wide ids, in the order accepted, and delivers them to every
node attached to it, this one included, in id order. Roster changes take
the same road. :class:`LocalBus` is the single-process bus, the default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed

from muca.protocol.messages import PRESENCE_DELTA, ChatMessage, Join
from muca.server.room import Member, Room


class BusListener(Protocol):
    """What a bus delivers to: one node's own connections."""

    def deliver(self, messages: Sequence[ChatMessage]) -> None:
        """Write these accepted messages, in id order, to the recipients
        connected here."""

    def roster_changed(self) -> None:
        """Somebody joined or left: a roster update is due."""


class Bus(Protocol):
    """The road from acceptance to every node's connections."""

    def attach(self, listener: BusListener) -> None:
        """Deliver to ``listener`` from now on."""

    def publish(self, drafts: Sequence[ChatMessage]) -> Deferred[list[ChatMessage]]:
        """Give ``drafts`` their ids and deliver them everywhere.

        Fires with the accepted messages once they are on their way; fails
        when they cannot be accepted, and then nothing of them is delivered.
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


class LocalBus:
    """The bus of a server that runs alone: ids from a counter, delivery by
    a direct call, so that a message reaches the recipients' queues in the
    same reactor turn that accepted it."""

    def __init__(self, last_id: int = 0) -> None:
        """``last_id``: the highest id given before (ids keep increasing)."""
        self.last_id = last_id
        self._listeners: list[BusListener] = []

    def attach(self, listener: BusListener) -> None:
        self._listeners.append(listener)

    def publish(self, drafts: Sequence[ChatMessage]) -> Deferred[list[ChatMessage]]:
        first = self.last_id + 1
        accepted = [
            dataclasses.replace(draft, id=first + offset)
            for offset, draft in enumerate(drafts)
        ]
        self.last_id += len(accepted)
        for listener in self._listeners:
            listener.deliver(accepted)
        return succeed(accepted)

    def roster_changed(self) -> None:
        for listener in self._listeners:
            listener.roster_changed()

    def join(self, room: Room, connection: Any, join: Join) -> Member:
        """The room decides alone, at once."""
        member = room.join(
            connection, join.nickname, join.uid, PRESENCE_DELTA in join.caps
        )
        self.roster_changed()
        return member

    def leave(self, room: Room, member: Member) -> bool:
        """Remove a member from the room, at once."""
        if not room.leave(member):
            return False
        self.roster_changed()
        return True
