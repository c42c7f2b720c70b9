"""The chat room: who is here, and where each message and roster change goes.

Pure Python with no I/O: every method returns what to deliver and to whom,
and the caller (``muca.server.node``) writes it. ``connection`` on a
:class:`Member` is the caller's opaque handle for the peer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from muca.protocol.messages import (
    ALL,
    GROUP,
    NICK_TAKEN,
    NO_RECIPIENT,
    PRIVATE,
    SERVER_FULL,
    UID_TAKEN,
    JoinRefused,
    ProtocolError,
    list_payload,
    presence_payload,
)


@dataclass(eq=False, slots=True)
class Member:
    """A joined peer.

    ``presence`` members asked for ``PRESENCE`` deltas; ``synced`` is set
    once such a member has had its first full ``LIST``.
    """

    nickname: str
    uid: str
    connection: Any
    presence: bool = False
    synced: bool = False
    entry: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.entry = {"UN": self.nickname, "UID": self.uid}


@dataclass(frozen=True, slots=True)
class Route:
    """Where one ``SEND`` goes: the ``MSG`` type, who gets it, who is unknown."""

    kind: str
    recipients: list[Member]
    unknown: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RosterUpdate:
    """The roster messages due after one or more joins and leaves.

    ``full_list`` goes to ``list_recipients`` (members without the presence
    capability, and presence members that have not had a list yet);
    ``delta``, when not ``None``, goes to ``delta_recipients``.
    """

    full_list: dict[str, Any]
    list_recipients: list[Member]
    delta: dict[str, Any] | None
    delta_recipients: list[Member]


class Room:
    """The peer registry: members by user id, in join order.

    Joins and leaves are recorded as pending roster changes; the caller
    decides when to turn them into messages with :meth:`take_roster_update`,
    which lets it coalesce a burst of changes into one update.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self._members: dict[str, Member] = {}
        self._nicknames: dict[str, Member] = {}
        self._pending_joined: dict[str, Member] = {}
        self._pending_left: list[str] = []
        self._unsynced: dict[str, Member] = {}
        self._changed = False

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, uid: object) -> bool:
        return uid in self._members

    def member(self, uid: str) -> Member | None:
        """The member with this user id, if joined."""
        return self._members.get(uid)

    def members(self) -> list[Member]:
        """All members, in join order."""
        return list(self._members.values())

    @property
    def roster_changed(self) -> bool:
        """True when joins or leaves await :meth:`take_roster_update`."""
        return self._changed

    def is_pending_join(self, member: Member) -> bool:
        """True when ``member`` joined since the last roster update."""
        return self._pending_joined.get(member.uid) is member

    def join(
        self,
        connection: Any,
        nickname: str,
        uid: str,
        presence: bool = False,
        *,
        enforce_capacity: bool = True,
    ) -> Member:
        """Add a peer; raise :class:`JoinRefused` when the room says no.

        Fields must already be valid (see ``muca.protocol.messages``).
        ``enforce_capacity=False``: the join was decided elsewhere (a
        cluster's registry), only recorded here.
        """
        if uid in self._members:
            raise JoinRefused(UID_TAKEN, f"user id {uid!r} is already joined")
        if nickname in self._nicknames:
            raise JoinRefused(NICK_TAKEN, f"nickname {nickname!r} is already in use")
        if (
            enforce_capacity
            and self.capacity is not None
            and len(self._members) >= self.capacity
        ):
            raise JoinRefused(SERVER_FULL, "the chat room is full")
        member = Member(nickname, uid, connection, presence)
        self._members[uid] = member
        self._nicknames[nickname] = member
        self._pending_joined[uid] = member
        if presence:
            self._unsynced[uid] = member
        self._changed = True
        return member

    def leave(self, member: Member) -> bool:
        """Remove a member; return False when it was not (or no longer) here."""
        if self._members.get(member.uid) is not member:
            return False
        del self._members[member.uid]
        del self._nicknames[member.nickname]
        if self._pending_joined.get(member.uid) is member:
            # Joined and left between two updates: nobody needs to hear of it.
            del self._pending_joined[member.uid]
        else:
            self._pending_left.append(member.uid)
        self._unsynced.pop(member.uid, None)
        self._changed = True
        return True

    def route(self, sender: Member, to: Sequence[str]) -> Route:
        """Resolve a ``SEND``'s ``TO`` list from ``sender``.

        Empty ``to``, or ``to`` naming ``ALL``, is a broadcast to every
        other member. Otherwise each entry is a user id or, failing that, a
        joined user's nickname (some clients address by nickname); the
        sender is dropped, then one distinct member is ``PRIVATE`` and
        several are ``GROUP``; unknown entries are returned in ``unknown``
        and the known ones still get the message. Raises
        :class:`ProtocolError` ``NO_RECIPIENT`` when ``to`` names only the
        sender.
        """
        if not to or ALL in to:
            members = self._members.values()
            return Route(ALL, [m for m in members if m is not sender], ())
        recipients: dict[str, Member] = {}
        unknown: dict[str, None] = {}
        for name in to:
            member = self._members.get(name) or self._nicknames.get(name)
            if member is None:
                unknown[name] = None
            elif member is not sender:
                recipients[member.uid] = member
        targets = len(recipients) + len(unknown)
        if not targets:
            raise ProtocolError(
                NO_RECIPIENT, "you cannot send a message to yourself only", ref="SEND"
            )
        kind = PRIVATE if targets == 1 else GROUP
        return Route(kind, list(recipients.values()), tuple(unknown))

    def take_roster_update(self) -> RosterUpdate | None:
        """Turn the pending joins and leaves into the messages now due.

        Returns ``None`` when nothing changed since the last call. Members
        that joined since then are included in the update they are due.
        """
        if not self._changed:
            return None
        members = self._members.values()
        delta_recipients = [m for m in members if m.synced]
        list_recipients = [m for m in members if not m.synced]
        delta = None
        if delta_recipients and (self._pending_joined or self._pending_left):
            delta = presence_payload(
                [m.entry for m in self._pending_joined.values()], self._pending_left
            )
        for member in self._unsynced.values():
            member.synced = True
        update = RosterUpdate(
            full_list=list_payload(m.entry for m in members),
            list_recipients=list_recipients,
            delta=delta,
            delta_recipients=delta_recipients if delta else [],
        )
        self._pending_joined = {}
        self._pending_left = []
        self._unsynced = {}
        self._changed = False
        return update
