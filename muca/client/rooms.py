"""The rooms a client sees (capability ``rooms``): what ``ROOMS`` lists, and
a room's name as the server writes it.

A server with rooms sends ``ROOMS`` right after ``ACK OKAY`` and again
whenever the rooms a user may see, their counts or its membership change;
the first entry is the server's default room. A server without them (an
original one, or an older cluster node that answers ``ROOMS_UNAVAILABLE``) sends
none, and its one room is the only one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from muca.client.errors import RoomRefused
from muca.protocol.messages import BAD_ROOM, MAX_ROOM_NAME

_ROOM_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """One entry of ``ROOMS``: a room's name, topic, how many are in it, and
    whether we are (``inside``)."""

    name: str
    topic: str = ""
    count: int = 0
    inside: bool = False


def parse_rooms(frame: dict[str, Any]) -> tuple[RoomInfo, ...]:
    """The rooms of a ``ROOMS`` frame, in its order, skipping ill-formed
    entries."""
    data = frame.get("DATA")
    if not isinstance(data, list):
        return ()
    rooms = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("ROOM"), str):
            continue
        topic, count = entry.get("TOPIC"), entry.get("COUNT")
        rooms.append(
            RoomInfo(
                name=entry["ROOM"],
                topic=topic if isinstance(topic, str) else "",
                count=count if isinstance(count, int) and count >= 0 else 0,
                inside=entry.get("IN") is True,
            )
        )
    return tuple(rooms)


def room_name(written: str, ref: str) -> str:
    """A room's name as the server writes it (lower case, no leading ``#``);
    raises :class:`RoomRefused` ``BAD_ROOM`` (sending nothing) for a name the
    server would refuse."""
    name = written.strip()
    name = name[1:] if name.startswith("#") else name
    name = name.lower()
    if not name or len(name) > MAX_ROOM_NAME or not _ROOM_CHARACTERS.issuperset(name):
        raise RoomRefused(
            BAD_ROOM,
            f"{written[:40]!r} is no room name: 1 to {MAX_ROOM_NAME} characters"
            " of a-z, 0-9, - and _ (an optional # before it)",
            ref,
            None,
        )
    return name
