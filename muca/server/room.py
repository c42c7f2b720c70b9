"""The server's users and rooms as the node sees them: one :class:`Room`
holding the directory (``muca.server.directory``: who is joined, by id and
nickname) and the rooms (``muca.server.rooms``: each its members, settings
and roster updates).

Pure Python with no I/O: every method returns what to deliver and to whom,
and the caller (``muca.server.node``) writes it. A ``JOIN`` puts a user in
the directory and in the default room; a client without the ``rooms``
capability stays there alone, so that what it sees is one room's, as
before rooms existed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from muca.protocol.messages import ALL
from muca.server.directory import (
    Directory,
    Member,
    Route,
    nick_is_a_uid,
    nick_looks_taken,
    nick_taken,
    uid_is_a_nickname,
    uid_taken,
)
from muca.server.rooms import DEFAULT_ROOM, ChatRoom, CreatePolicy, Rooms, RosterUpdate

__all__ = [
    "ChatRoom",
    "Member",
    "Room",
    "RosterUpdate",
    "Route",
    "nick_is_a_uid",
    "nick_looks_taken",
    "nick_taken",
    "uid_is_a_nickname",
    "uid_taken",
]


class Room:
    """The peer registry and its rooms: ``directory`` (every user, in join
    order) and ``rooms`` (the default one and those made since).

    Joins, leaves, entries and exits are recorded as pending roster changes
    of each room they touch; the caller turns them into messages with
    :meth:`take_roster_updates`. ``known``: the user ids that own their name
    while away (offline delivery, on an authenticating server); the caller
    keeps it up to date.
    """

    def __init__(
        self,
        capacity: int | None = None,
        known: Collection[str] = frozenset(),
        default_room: str = DEFAULT_ROOM,
        create_rooms: CreatePolicy | str = CreatePolicy.ANYONE,
    ) -> None:
        self.directory = Directory(capacity, known)
        self.rooms = Rooms(default_room, create_rooms)

    @property
    def known(self) -> Collection[str]:
        """The user ids that own their name while away."""
        return self.directory.known

    @property
    def capacity(self) -> int | None:
        """The most users the server takes (None: no cap)."""
        return self.directory.capacity

    @property
    def default(self) -> ChatRoom:
        """The default room, which every ``JOIN`` enters."""
        return self.rooms.default

    def __len__(self) -> int:
        return len(self.directory)

    def __contains__(self, uid: object) -> bool:
        return uid in self.directory

    def member(self, uid: str) -> Member | None:
        """The user with this user id, if joined."""
        return self.directory.member(uid)

    def members(self) -> list[Member]:
        """All users, in join order."""
        return self.directory.members()

    def is_pending_join(self, member: Member) -> bool:
        """True when ``member`` entered one of its rooms since that room's
        last roster update."""
        return any(room.is_pending_join(member) for room in member.entered.values())

    def join(
        self,
        connection: Any,
        nickname: str,
        uid: str,
        presence: bool = False,
        *,
        rooms: bool = False,
        decided: bool = False,
    ) -> Member:
        """Add a peer to the directory and the default room; raise
        :class:`JoinRefused` when the server says no.

        Fields must already be valid (see ``muca.protocol.messages``).
        ``decided``: the join was decided elsewhere (a cluster's registry),
        only recorded here (an exact clash of id or nickname still raises).
        """
        member = self.directory.add(
            connection, nickname, uid, presence, rooms=rooms, decided=decided
        )
        self.enter(member, self.rooms.default)
        return member

    def check_names(self, nickname: str, uid: str) -> None:
        """See :meth:`Directory.check_names`."""
        self.directory.check_names(nickname, uid)

    def enter(self, member: Member, room: ChatRoom) -> bool:
        """Put a joined member in a room; False when it is in already."""
        if not room.enter(member):
            return False
        self.rooms.listing_changed = True
        return True

    def exit(self, member: Member, room: ChatRoom) -> bool:
        """Take a member out of a room; False when it was not in it."""
        if not room.exit(member):
            return False
        self.rooms.listing_changed = True
        return True

    def leave(self, member: Member) -> bool:
        """Remove a user from the server and every room it is in; return
        False when it was not (or no longer) here."""
        if not self.directory.remove(member):
            return False
        for room in list(member.entered.values()):
            self.exit(member, room)
        return True

    def route(
        self, sender: Member, to: Sequence[str], room: ChatRoom | None = None
    ) -> Route:
        """Resolve a ``SEND``'s ``TO`` list from ``sender``.

        Empty ``to``, or ``to`` naming ``ALL``, is a broadcast to every
        other member of ``room`` (the default room when None; the caller
        checks the sender is in it). Otherwise the message goes to users of
        the server, whatever their rooms (see :meth:`Directory.resolve`).
        """
        if not to or ALL in to:
            room = self.rooms.default if room is None else room
            members = room.members()
            return Route(ALL, [m for m in members if m is not sender], (), room)
        return self.directory.resolve(sender, to)

    def take_roster_update(self) -> RosterUpdate | None:
        """The default room's roster update now due (see
        :meth:`ChatRoom.take_roster_update`)."""
        return self.rooms.default.take_roster_update()

    def take_roster_updates(self) -> list[RosterUpdate]:
        """Every room's roster update now due, the default room's first."""
        updates = []
        for room in self.rooms.changed():
            update = room.take_roster_update()
            if update is not None:
                updates.append(update)
        return updates
