"""The server's rooms: each its members, owner, settings, invitations and
roster updates; which rooms there are, the default one, who may create one.

Pure Python with no I/O: methods say what changed and what to deliver to
whom, and the caller (``muca.server.node``) writes it. Who is on the server
at all is the directory (``muca.server.directory``); a user is in one or
more rooms here. A client without the ``rooms`` capability is a member of
the default room and of no other.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from muca.protocol.messages import in_room, list_payload, presence_payload
from muca.protocol.wire import native_json
from muca.server.directory import Member
from muca.store.base import StoredRoom

DEFAULT_ROOM = "general"


class CreatePolicy(enum.Enum):
    """Who may create a room by entering one that does not exist
    (``--create-rooms``)."""

    ANYONE = "anyone"
    ADMINS = "admins"
    NOBODY = "nobody"

    def allows(self, admin: bool) -> bool:
        """Whether a user (a server admin or not) may create a room."""
        if self is CreatePolicy.ANYONE:
            return True
        return admin and self is CreatePolicy.ADMINS


@dataclass(frozen=True, slots=True)
class RosterUpdate:
    """The roster messages due after one or more entries and exits of a room.

    ``full_list`` goes to ``list_recipients`` (members without the presence
    capability, and presence members that have not had a list yet);
    ``delta``, when not ``None``, goes to ``delta_recipients``. ``room``:
    the room's name; rooms clients get these with ``ROOM`` (see
    :func:`by_capability`).
    """

    full_list: dict[str, Any]
    list_recipients: list[Member]
    delta: dict[str, Any] | None
    delta_recipients: list[Member]
    room: str = DEFAULT_ROOM


def by_capability(
    payload: dict[str, Any], members: list[Member], room: str
) -> list[tuple[dict[str, Any], list[Member]]]:
    """The one room object for ``members``, split into what each kind of
    client gets: as it is (clients without ``rooms``), and with ``ROOM``.
    A room whose members are of one kind is one object, one encoding."""
    tagged = [m for m in members if m.rooms]
    if not tagged:
        return [(payload, members)]
    if len(tagged) == len(members):
        return [(in_room(payload, room), members)]
    plain = [m for m in members if not m.rooms]
    return [(payload, plain), (in_room(payload, room), tagged)]


class ChatRoom:
    """One room: its members in the order they entered, its owner (None:
    the server's, e.g. the default room), its settings and invitations.

    Entries and exits are recorded as pending roster changes; the caller
    decides when to turn them into messages with :meth:`take_roster_update`,
    which lets it coalesce a burst of changes into one update.
    """

    def __init__(self, name: str, owner: str | None = None, created: int = 0) -> None:
        self.name = name
        self.owner = owner
        #: When it was made (ms since the epoch; 0: not known).
        self.created = created
        self.topic = ""
        self.private = False
        #: Slow mode: seconds between two messages of one member (0: off).
        self.slow = 0
        #: User ids let into this room while it is private.
        self.invited: set[str] = set()
        #: How many members have the rooms capability (0: every message
        #: for this room is one object, as before rooms existed).
        self.tagged = 0
        self._members: dict[str, Member] = {}
        self._pending_joined: dict[str, Member] = {}
        self._pending_left: list[str] = []
        self._unsynced: dict[str, Member] = {}
        self._changed = False
        # (count, topic, entry for a member, for anyone else): this room's
        # ROOMS entry in native JSON, encoded again only when it changes.
        self._encoded: tuple[int, str, bytes, bytes] | None = None

    def __repr__(self) -> str:
        return f"<ChatRoom {self.name!r}: {len(self._members)} members>"

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, uid: object) -> bool:
        return uid in self._members

    @property
    def changed(self) -> bool:
        """Entries or exits are waiting for :meth:`take_roster_update`."""
        return self._changed

    def member(self, uid: str) -> Member | None:
        """The member with this user id, if it is in this room."""
        return self._members.get(uid)

    def members(self) -> list[Member]:
        """All members, in the order they entered."""
        return list(self._members.values())

    def is_pending_join(self, member: Member) -> bool:
        """True when ``member`` entered since the last roster update."""
        return self._pending_joined.get(member.uid) is member

    def may_enter(self, uid: str) -> bool:
        """Whether this user may enter: a public room, or invited to it
        (or its owner)."""
        return not self.private or uid in self.invited or uid == self.owner

    def visible_to(self, uid: str) -> bool:
        """Whether ``ROOMS`` shows this room to this user: a public room,
        or one it is in or invited to."""
        return not self.private or uid in self._members or self.may_enter(uid)

    def enter(self, member: Member) -> bool:
        """Add a member; False when it is in already."""
        if member.uid in self._members:
            return False
        self._members[member.uid] = member
        member.entered[self.name] = self
        if member.rooms:
            self.tagged += 1
        self._pending_joined[member.uid] = member
        if member.presence:
            self._unsynced[member.uid] = member
        self._changed = True
        return True

    def exit(self, member: Member) -> bool:
        """Remove a member; False when it was not (or no longer) here."""
        if self._members.get(member.uid) is not member:
            return False
        del self._members[member.uid]
        member.entered.pop(self.name, None)
        if member.rooms:
            self.tagged -= 1
        member.listed.discard(self.name)
        if self._pending_joined.get(member.uid) is member:
            # Entered and left between two updates: nobody needs to hear of it.
            del self._pending_joined[member.uid]
        else:
            self._pending_left.append(member.uid)
        self._unsynced.pop(member.uid, None)
        self._changed = True
        return True

    def take_roster_update(self) -> RosterUpdate | None:
        """Turn the pending entries and exits into the messages now due.

        Returns ``None`` when nothing changed since the last call. Members
        that entered since then are included in the update they are due.
        """
        if not self._changed:
            return None
        name = self.name
        members = self._members.values()
        delta_recipients = [m for m in members if name in m.listed]
        list_recipients = [m for m in members if name not in m.listed]
        delta = None
        if delta_recipients and (self._pending_joined or self._pending_left):
            delta = presence_payload(
                [m.entry for m in self._pending_joined.values()], self._pending_left
            )
        for member in self._unsynced.values():
            member.listed.add(name)
        update = RosterUpdate(
            full_list=list_payload(m.entry for m in members),
            list_recipients=list_recipients,
            delta=delta,
            delta_recipients=delta_recipients if delta else [],
            room=name,
        )
        self._pending_joined = {}
        self._pending_left = []
        self._unsynced = {}
        self._changed = False
        return update

    def stored(self) -> StoredRoom:
        """This room as the store keeps it (its settings; the invitations
        are kept one by one)."""
        return StoredRoom(
            self.name, self.owner, self.topic, self.private, self.slow, self.created
        )

    def entry(self, uid: str) -> dict[str, Any]:
        """This room as ``ROOMS`` shows it to this user."""
        return {
            "ROOM": self.name,
            "TOPIC": self.topic,
            "COUNT": len(self._members),
            "IN": uid in self._members,
        }

    def encoded_entries(self) -> tuple[bytes, bytes]:
        """This room's ``ROOMS`` entry in native JSON: as its members see it
        (``IN`` true) and as anyone else does; encoded once per count and
        topic, whoever they are sent to."""
        count, topic = len(self._members), self.topic
        cached = self._encoded
        if cached is None or cached[0] != count or cached[1] != topic:
            entry = {"ROOM": self.name, "TOPIC": topic, "COUNT": count, "IN": True}
            inside = native_json(entry).encode()
            entry["IN"] = False
            cached = self._encoded = (count, topic, inside, native_json(entry).encode())
        return cached[2], cached[3]


class Rooms:
    """The rooms of the server, by name, in the order they were made; the
    default room first, made with it."""

    def __init__(
        self,
        default: str = DEFAULT_ROOM,
        create: CreatePolicy | str = CreatePolicy.ANYONE,
    ) -> None:
        self.policy = CreatePolicy(create)
        self.default = ChatRoom(default)
        self._rooms: dict[str, ChatRoom] = {default: self.default}
        #: Something ``ROOMS`` shows changed (a room, a count, a setting).
        self.listing_changed = False

    def __len__(self) -> int:
        return len(self._rooms)

    def __contains__(self, name: object) -> bool:
        return name in self._rooms

    def get(self, name: str) -> ChatRoom | None:
        """The room of this (valid, lowered) name, if there is one."""
        return self._rooms.get(name)

    def all(self) -> list[ChatRoom]:
        """Every room, the default first."""
        return list(self._rooms.values())

    def changed(self) -> Iterable[ChatRoom]:
        """The rooms with entries or exits waiting for a roster update."""
        return [room for room in self._rooms.values() if room.changed]

    def may_create(self, admin: bool = False) -> bool:
        """Whether a user (a server admin or not) may create a room."""
        return self.policy.allows(admin)

    def create(self, name: str, owner: str, created: int = 0) -> ChatRoom:
        """Make a public room with this owner (the name is free); ``created``:
        when (ms since the epoch)."""
        assert name not in self._rooms, name
        room = self._rooms[name] = ChatRoom(name, owner, created)
        self.listing_changed = True
        return room

    def encoded_listings(
        self, members: Iterable[Member]
    ) -> Iterator[tuple[Member, bytes]]:
        """Each member's ``ROOMS`` in native framing: the bytes of encoding
        ``rooms_payload(self.listing(uid))``, put together from each room's
        entries as :meth:`ChatRoom.encoded_entries` encoded them, so that
        10,000 members of 1,000 rooms cost a copy of a list and a join of
        bytes each, not 10 million dictionaries encoded."""
        rooms = list(self._rooms.values())
        # The default room comes first and is never private: every other
        # entry follows a comma, and an invisible one is no bytes at all.
        inside, outside = rooms[0].encoded_entries()
        base = [b'{"CMD":"ROOMS","DATA":[', outside]
        ins, outs = [b"", inside], [b"", outside]
        position = {rooms[0].name: 1}
        private = []
        for index, room in enumerate(rooms[1:], 2):
            inside, outside = room.encoded_entries()
            ins.append(b"," + inside)
            outs.append(b"," + outside)
            position[room.name] = index
            if room.private:
                private.append((index, room))
                base.append(b"")
            else:
                base.append(outs[index])
        base.append(b"]}\n")
        for member in members:
            parts = base.copy()
            uid = member.uid
            for index, room in private:
                if room.visible_to(uid):
                    parts[index] = outs[index]
            for name in member.entered:
                index = position[name]
                parts[index] = ins[index]
            yield member, b"".join(parts)

    def restore(self, kept: StoredRoom) -> ChatRoom | None:
        """Make again a room the store kept, with its settings and
        invitations; None for one of the default room's name (the default
        room is the server's, whatever was kept under its name)."""
        if kept.name in self._rooms:
            return None
        room = self._rooms[kept.name] = ChatRoom(kept.name, kept.owner, kept.created)
        room.topic = kept.topic
        room.private = kept.private
        room.slow = kept.slow
        room.invited.update(kept.invited)
        return room

    def listing(self, uid: str) -> list[dict[str, Any]]:
        """``ROOMS``' entries for this user: every room it may see."""
        return [
            room.entry(uid) for room in self._rooms.values() if room.visible_to(uid)
        ]
