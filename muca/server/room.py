"""The chat room: who is here, and where each message and roster change goes.

Pure Python with no I/O: every method returns what to deliver and to whom,
and the caller (``muca.server.node``) writes it. ``connection`` on a
:class:`Member` is the caller's opaque handle for the peer.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from muca.protocol.confusables import skeleton
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
    #: The nickname's confusable skeleton (see ``muca.protocol.confusables``).
    look: str = field(init=False)

    def __post_init__(self) -> None:
        self.entry = {"UN": self.nickname, "UID": self.uid}
        self.look = skeleton(self.nickname)


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


def uid_taken(uid: str) -> JoinRefused:
    """The refusal of a user id that is joined already."""
    return JoinRefused(UID_TAKEN, f"user id {uid!r} is already joined")


def uid_is_a_nickname(uid: str) -> JoinRefused:
    """The refusal of a user id that is another member's nickname."""
    return JoinRefused(
        UID_TAKEN,
        f"user id {uid!r} is another user's nickname: messages to it would"
        " be ambiguous",
    )


def nick_taken(nickname: str) -> JoinRefused:
    """The refusal of a nickname in use."""
    return JoinRefused(NICK_TAKEN, f"nickname {nickname!r} is already in use")


def nick_is_a_uid(nickname: str) -> JoinRefused:
    """The refusal of a nickname that is another user's id."""
    return JoinRefused(NICK_TAKEN, f"nickname {nickname!r} is another user's user id")


def nick_looks_taken(nickname: str, other: str) -> JoinRefused:
    """The refusal of a nickname that looks like one in use."""
    return JoinRefused(
        NICK_TAKEN,
        f"nickname {nickname!r} looks like {other!r}, which is already in use",
    )


class Room:
    """The peer registry: members by user id, in join order.

    Joins and leaves are recorded as pending roster changes; the caller
    decides when to turn them into messages with :meth:`take_roster_update`,
    which lets it coalesce a burst of changes into one update. ``known``:
    the user ids that own their name while away (offline delivery, on an
    authenticating server); the caller keeps it up to date.
    """

    def __init__(
        self, capacity: int | None = None, known: Collection[str] = frozenset()
    ) -> None:
        self.capacity = capacity
        self.known = known
        self._members: dict[str, Member] = {}
        self._nicknames: dict[str, Member] = {}
        self._looks: dict[str, Member] = {}
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
        decided: bool = False,
    ) -> Member:
        """Add a peer; raise :class:`JoinRefused` when the room says no.

        Fields must already be valid (see ``muca.protocol.messages``).
        ``decided``: the join was decided elsewhere (a cluster's registry),
        only recorded here (an exact clash of id or nickname still raises).
        """
        if uid in self._members:
            raise uid_taken(uid)
        if nickname in self._nicknames:
            raise nick_taken(nickname)
        if not decided:
            self.check_names(nickname, uid)
            if self.capacity is not None and len(self._members) >= self.capacity:
                raise JoinRefused(SERVER_FULL, "the chat room is full")
        member = Member(nickname, uid, connection, presence)
        self._members[uid] = member
        self._nicknames[nickname] = member
        self._looks.setdefault(member.look, member)
        self._pending_joined[uid] = member
        if presence:
            self._unsynced[uid] = member
        self._changed = True
        return member

    def check_names(self, nickname: str, uid: str) -> None:
        """Raise :class:`JoinRefused` unless this nickname and user id can
        name nobody else: in ``TO`` a name is a user id first, so a
        nickname may not be another user's id (joined or known), a user id
        not another member's nickname, and a nickname may not look like one
        in use (``NICK_TAKEN``, ``UID_TAKEN``). One's own id as one's
        nickname is fine."""
        if uid in self._members:
            raise uid_taken(uid)
        if nickname in self._nicknames:
            raise nick_taken(nickname)
        if uid in self._nicknames:
            raise uid_is_a_nickname(uid)
        if nickname != uid and (nickname in self._members or nickname in self.known):
            raise nick_is_a_uid(nickname)
        holder = self._looks.get(skeleton(nickname))
        if holder is not None:
            raise nick_looks_taken(nickname, holder.nickname)

    def leave(self, member: Member) -> bool:
        """Remove a member; return False when it was not (or no longer) here."""
        if self._members.get(member.uid) is not member:
            return False
        del self._members[member.uid]
        del self._nicknames[member.nickname]
        if self._looks.get(member.look) is member:
            del self._looks[member.look]
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
        other member. Otherwise each entry is a user id or, when it is no
        joined or known user id, a joined user's nickname (some clients
        address by nickname); a known id that is away is ``unknown`` here
        (the caller keeps the message for it); the
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
            member = self._members.get(name)
            if member is None and name not in self.known:
                member = self._nicknames.get(name)
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
