"""The server's directory: who is joined, by user id and by nickname.

Pure Python with no I/O. A user is in the directory from its ``JOIN`` until
it leaves the server, whatever rooms (``muca.server.rooms``) it is in;
private and group ``TO`` lists resolve here, among every user of the
server. ``connection`` on a :class:`Member` is the caller's opaque handle
for the peer.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from muca.protocol.confusables import skeleton
from muca.protocol.messages import (
    GROUP,
    NICK_TAKEN,
    NO_RECIPIENT,
    PRIVATE,
    SERVER_FULL,
    UID_TAKEN,
    JoinRefused,
    ProtocolError,
)


@dataclass(eq=False, slots=True)
class Member:
    """A joined peer.

    ``presence`` members asked for ``PRESENCE`` deltas; ``rooms``: the
    client has the ``rooms`` capability (its room messages carry
    ``ROOM``). ``entered``: the rooms it is in, by name, in the order it
    entered them; ``listed``: the names of the rooms whose first full
    ``LIST`` a presence member has had (it gets deltas there from then on).
    """

    nickname: str
    uid: str
    connection: Any
    presence: bool = False
    rooms: bool = False
    #: Its rooms (``muca.server.rooms.ChatRoom``, which imports this module).
    entered: dict[str, Any] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)
    #: The hash of the last ``ROOMS`` this member was sent (rooms clients
    #: only; see ``muca.server.node.ChatFactory._send_rooms``).
    shown: Any = None
    #: It asked for the ``history`` capability: a room it enters is
    #: replayed after ``ENTERED`` (set once it has joined).
    history: bool = False
    #: It asked for the ``moderation`` capability on an authenticating
    #: server: the moderation commands are its (set once it has joined).
    moderation: bool = False
    entry: dict[str, str] = field(init=False)
    #: The nickname's confusable skeleton (see ``muca.protocol.confusables``).
    look: str = field(init=False)

    def __post_init__(self) -> None:
        self.entry = {"UN": self.nickname, "UID": self.uid}
        self.look = skeleton(self.nickname)

    @property
    def synced(self) -> bool:
        """Whether this presence member has had a first full ``LIST`` (in
        any of its rooms; a client without rooms has only the default)."""
        return bool(self.listed)


@dataclass(frozen=True, slots=True)
class Route:
    """Where one ``SEND`` goes: the ``MSG`` type, who gets it, who is unknown;
    ``room``: the room of a broadcast (``ALL``), else None."""

    kind: str
    recipients: list[Member]
    unknown: tuple[str, ...]
    #: (A ``muca.server.rooms.ChatRoom``, which imports this module.)
    room: Any = None


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


class Directory:
    """Every joined user of the server, by user id (in join order) and by
    nickname. ``known``: the user ids that own their name while away
    (offline delivery, on an authenticating server); the caller keeps it
    up to date. ``capacity``: the most users the server takes."""

    def __init__(
        self, capacity: int | None = None, known: Collection[str] = frozenset()
    ) -> None:
        self.capacity = capacity
        self.known = known
        self._members: dict[str, Member] = {}
        self._nicknames: dict[str, Member] = {}
        self._looks: dict[str, Member] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, uid: object) -> bool:
        return uid in self._members

    def member(self, uid: str) -> Member | None:
        """The user with this user id, if joined."""
        return self._members.get(uid)

    def by_nickname(self, nickname: str) -> Member | None:
        """The user with this nickname, if joined."""
        return self._nicknames.get(nickname)

    def members(self) -> list[Member]:
        """All users, in join order."""
        return list(self._members.values())

    def add(
        self,
        connection: Any,
        nickname: str,
        uid: str,
        presence: bool = False,
        *,
        rooms: bool = False,
        decided: bool = False,
    ) -> Member:
        """Add a user; raise :class:`JoinRefused` when the server says no.

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
        member = Member(nickname, uid, connection, presence, rooms)
        self._members[uid] = member
        self._nicknames[nickname] = member
        self._looks.setdefault(member.look, member)
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

    def remove(self, member: Member) -> bool:
        """Remove a user; return False when it was not (or no longer) here."""
        if self._members.get(member.uid) is not member:
            return False
        del self._members[member.uid]
        del self._nicknames[member.nickname]
        if self._looks.get(member.look) is member:
            del self._looks[member.look]
        return True

    def resolve(self, sender: Member, to: Sequence[str]) -> Route:
        """Resolve a private or group ``TO`` list (not empty, no ``ALL``)
        among every user of the server.

        Each entry is a user id or, when it is no joined or known user id,
        a joined user's nickname; a known id that is away is ``unknown``
        here (the caller keeps the message for it); the sender is dropped,
        then one distinct user is ``PRIVATE`` and several are ``GROUP``;
        unknown entries are returned in ``unknown`` and the others still
        get the message. Raises :class:`ProtocolError` ``NO_RECIPIENT``
        when ``to`` names only the sender.
        """
        recipients: dict[str, Member] = {}
        unknown: dict[str, None] = {}
        members, nicknames, known = self._members, self._nicknames, self.known
        for name in to:
            member = members.get(name)
            if member is None and name not in known:
                member = nicknames.get(name)
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
