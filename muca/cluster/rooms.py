"""The cluster's rooms: ``ENTER``, ``EXIT``, ``ROOMSET`` and ``INVITE``
decided cluster-wide by scripts in Redis (``muca.cluster.scripts``), and
applied to every node's replica when their entries come back on the stream.

Redis holds each room's settings and invitations (the rooms hash) and each
member's rooms with the order it entered them (in its registry entry), so
that a node starting reads them all at once (:meth:`SharedRooms.load`), and
a member that goes (it left, or its node died) leaves every room with its
entry. The node that asked hears of a refusal from the script's reply; what
was done comes back on the stream, in one order for every node:
``ENTERED`` then goes to the member that entered, ``TOPIC`` to a room's
members on every node, and rosters and ``ROOMS`` follow as on one server.
An exit is made on the member's own node at once (as a leave is), so that
nothing reaches it from the room it left; the script follows, and a sync
makes good one that Redis did not take.

A room is named in Redis and on the stream by its key: its name, or ``""``
for the default room.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.cluster import scripts
from muca.cluster.entries import Entered, Exited, Invited, RoomChanged
from muca.protocol.messages import (
    ALREADY_IN_ROOM,
    CLUSTER_UNAVAILABLE,
    INVITE_ONLY,
    NO_SUCH_ROOM,
    NOT_ALLOWED,
    NOT_IN_ROOM,
    Invite,
    RoomSet,
)
from muca.server.room import ChatRoom, Member, Room

#: The most rooms a cluster makes (each is kept in Redis and on every node).
MAX_ROOMS = 10_000
#: The most user ids one room keeps invited.
MAX_INVITED = 1_000
#: The most invitations all rooms keep together.
MAX_INVITATIONS = 100_000

#: The connection of a member joined on another node (as in membership).
REMOTE = None

log = Logger(namespace="muca.cluster.redisbus")

RoomEvent = Entered | Exited | RoomChanged | Invited


class SharedRooms:
    """This node's side of the cluster's rooms (see the module's docstring).

    ``run`` runs one of the cluster's scripts; ``command_failed`` hears of
    an exit that Redis did not take (the next beat registers this node's
    members again). :attr:`listener` is the bus's listener, the node's
    ``ChatFactory``: it has the ``room`` and writes ``ENTERED`` and
    ``TOPIC`` (``room_entered``, ``room_changed``).
    """

    def __init__(
        self,
        node: str,
        run: Callable[..., Deferred[Any]],
        command_failed: Callable[[Failure], None],
    ) -> None:
        self.node = node
        self._run = run
        self._command_failed = command_failed
        self.listener: Any = None

    @property
    def room(self) -> Room:
        """The replica of the cluster's users and rooms."""
        return self.listener.room

    def key(self, room: ChatRoom) -> str:
        """The key of a room in Redis and on the stream."""
        return "" if room is self.room.rooms.default else room.name

    def _chat_room(self, key: str) -> ChatRoom | None:
        rooms = self.room.rooms
        return rooms.default if key == "" else rooms.get(key)

    def _key_of_name(self, name: str) -> str:
        return "" if name == self.room.rooms.default.name else name

    # The commands of this node's members (checked on the replica first)

    def enter(self, member: Member, name: str, create: bool) -> None:
        """Enter ``member`` into the room ``name``, made first if there is
        none and ``create``; ``ENTERED`` once its entry is back."""
        d = self._run(
            scripts.ENTER,
            member.uid,
            self.node,
            self._key_of_name(name),
            "1" if create else "0",
            str(MAX_ROOMS),
        )
        d.addCallbacks(
            self._entered, self._failed, (member, name), None, (member, "ENTER")
        )

    def _entered(self, reply: list[Any], member: Member, name: str) -> None:
        verdict = reply[0]
        if verdict == "ALREADY_IN_ROOM":
            self._refuse(
                member,
                ALREADY_IN_ROOM,
                f"you are in the room {name!r} already",
                "ENTER",
            )
        elif verdict == "NO_SUCH_ROOM":
            self._refuse(
                member,
                NO_SUCH_ROOM,
                f"there is no room {name!r}, and this server does not let"
                " you create one",
                "ENTER",
            )
        elif verdict == "ROOMS_FULL":
            self._refuse(
                member,
                NO_SUCH_ROOM,
                f"there is no room {name!r}, and the cluster has {MAX_ROOMS}"
                " rooms, the most it makes",
                "ENTER",
            )
        elif verdict == "INVITE_ONLY":
            self._refuse(
                member,
                INVITE_ONLY,
                f"the room {name!r} is private: a member must invite you",
                "ENTER",
            )

    def exit(self, member: Member, room: ChatRoom) -> None:
        """``member`` left ``room`` here (see the module's docstring): now
        cluster-wide."""
        d = self._run(scripts.EXIT, member.uid, self.node, self.key(room))
        d.addErrback(self._command_failed)

    def set_room(self, member: Member, request: RoomSet) -> None:
        """``ROOMSET`` by ``member``: its owner, Redis says."""
        topic = "" if request.topic is None else "=" + request.topic
        private = "" if request.private is None else str(int(request.private))
        slow = "" if request.slow is None else str(request.slow)
        d = self._run(
            scripts.ROOMSET,
            member.uid,
            self.node,
            self._key_of_name(request.room),
            topic,
            private,
            slow,
        )
        d.addCallbacks(
            self._set,
            self._failed,
            (member, request.room),
            None,
            (member, "ROOMSET"),
        )

    def _set(self, reply: list[Any], member: Member, name: str) -> None:
        verdict = reply[0]
        if verdict == "NO_SUCH_ROOM":
            self._refuse(member, NO_SUCH_ROOM, f"there is no room {name!r}", "ROOMSET")
        elif verdict == "NOT_ALLOWED":
            who = "its owner" if reply[1] else "the server"
            self._refuse(
                member,
                NOT_ALLOWED,
                f"only {who} may change the room {name!r}",
                "ROOMSET",
            )

    def invite(self, member: Member, request: Invite) -> None:
        """``INVITE`` by ``member``: a member of the room, Redis says."""
        d = self._run(
            scripts.INVITE,
            member.uid,
            self.node,
            self._key_of_name(request.room),
            request.uid,
            str(MAX_INVITED),
            str(MAX_INVITATIONS),
        )
        d.addCallbacks(
            self._invited,
            self._failed,
            (member, request.room),
            None,
            (member, "INVITE"),
        )

    def _invited(self, reply: list[Any], member: Member, name: str) -> None:
        verdict = reply[0]
        if verdict == "NO_SUCH_ROOM":
            self._refuse(member, NO_SUCH_ROOM, f"there is no room {name!r}", "INVITE")
        elif verdict == "NOT_IN_ROOM":
            self._refuse(
                member, NOT_IN_ROOM, f"you are not in the room {name!r}", "INVITE"
            )
        elif verdict == "INVITES_FULL":
            self._refuse(
                member,
                NOT_ALLOWED,
                f"the room {name!r} has the most invitations the cluster keeps"
                f" ({MAX_INVITED} a room, {MAX_INVITATIONS} in all)",
                "INVITE",
            )

    def _failed(self, failure: Failure, member: Member, ref: str) -> None:
        log.info(
            "cluster: {ref} failed: {error}", ref=ref, error=failure.getErrorMessage()
        )
        self._refuse(
            member,
            CLUSTER_UNAVAILABLE,
            "the cluster's shared registry (Redis) cannot be reached, so this"
            " was not done; try again in a few seconds",
            ref,
        )

    def _refuse(self, member: Member, code: str, reason: str, ref: str) -> None:
        """One ``ERROR`` to ``member``, if it is still here."""
        if self.room.member(member.uid) is member and member.connection is not None:
            member.connection.send_error(code, reason, ref)

    # Entries read from the stream

    def apply(self, entry: RoomEvent) -> None:
        """``entry`` was read from the stream: make it so in the replica."""
        if isinstance(entry, RoomChanged):
            self._apply_room(entry)
        elif isinstance(entry, Entered):
            self._apply_enter(entry)
        elif isinstance(entry, Exited):
            self._apply_exit(entry)
        else:
            self._apply_invite(entry)

    def _apply_room(self, event: RoomChanged) -> None:
        room = self._chat_room(event.room)
        if room is None:
            room = self.room.rooms.create(event.room, event.owner)
        elif room is self.room.rooms.default:
            return  # the server's (nobody sets it)
        room.owner = event.owner
        room.private = event.private
        room.slow = event.slow
        by = None
        if event.topic_changed and event.by and room.topic != event.topic:
            by = event.by
        room.topic = event.topic
        self.listener.room_changed(room, by)

    def _apply_enter(self, event: Entered) -> None:
        member = self.room.member(event.uid)
        room = self._chat_room(event.room)
        if member is None or room is None or event.uid in room:
            return
        self.room.enter(member, room)
        if event.node == self.node and member.connection is not REMOTE:
            self.listener.room_entered(member, room)
        else:
            self.listener.roster_changed()

    def _apply_exit(self, event: Exited) -> None:
        if event.node == self.node:
            return  # Made here at once (see exit()).
        member = self.room.member(event.uid)
        room = self._chat_room(event.room)
        if member is None or room is None or member.connection is not REMOTE:
            return
        if self.room.exit(member, room):
            self.listener.roster_changed()

    def _apply_invite(self, event: Invited) -> None:
        room = self._chat_room(event.room)
        if room is None or event.uid in room.invited:
            return
        room.invited.add(event.uid)
        self.listener.room_changed(room, None)

    # The snapshot, and registering again

    def load(self, raw: str) -> None:
        """Make the rooms of a snapshot (``scripts.SNAPSHOT``), in the order
        they were made."""
        made = _listed(json.loads(raw))
        made.sort(key=lambda row: int(row[1]))
        rooms = self.room.rooms
        for name, _seq, owner, topic, private, slow, invited in made:
            room = rooms.get(name) or rooms.create(name, owner)
            room.owner = owner
            room.topic = topic
            room.private = bool(private)
            room.slow = int(slow)
            room.invited.update(_listed(invited))

    def place(self, entries: Iterable[tuple[Member, str]]) -> None:
        """Put the members of a snapshot in their rooms: each with the JSON
        of its ``[key, seq, ...]``; every room's members in the order they
        entered it (the default room's too)."""
        default = self.room.rooms.default
        placed: list[tuple[int, Member, ChatRoom]] = []
        for member, raw in entries:
            flat = _listed(json.loads(raw))
            self.room.exit(member, default)
            for index in range(0, len(flat) - 1, 2):
                room = self._chat_room(flat[index])
                if room is not None:
                    placed.append((int(flat[index + 1]), member, room))
        placed.sort(key=lambda row: row[0])
        for _seq, member, room in placed:
            self.room.enter(member, room)

    def reconcile(self, member: Member, keys: Sequence[str]) -> None:
        """A member registered again is in exactly the rooms ``keys``."""
        wanted = [room for room in map(self._chat_room, keys) if room is not None]
        for room in list(member.entered.values()):
            if room not in wanted:
                self.room.exit(member, room)
        for room in wanted:
            self.room.enter(member, room)

    def definitions(self) -> str:
        """The JSON of the rooms this node knows, for ``scripts.SYNC``."""
        return json.dumps(
            [
                [
                    room.name,
                    room.owner or "",
                    room.topic,
                    int(room.private),
                    room.slow,
                    sorted(room.invited),
                ]
                for room in self.room.rooms.all()
                if room is not self.room.rooms.default
            ]
        )

    def keys_of(self, member: Member) -> str:
        """The JSON of the keys of ``member``'s rooms, in the order it
        entered them, for ``scripts.SYNC``."""
        return json.dumps([self.key(room) for room in member.entered.values()])


def _listed(value: Any) -> list[Any]:
    """A JSON list from Redis, where an empty one may come as ``{}``."""
    return value if isinstance(value, list) else []
