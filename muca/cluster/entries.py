"""The entries of the cluster's stream, as typed values.

The stream (``muca.cluster.scripts``: its Lua scripts append every entry)
carries, in one order for every node, three kinds of entries, each a few
string fields:

- a batch of messages (:class:`Batch`): ``t=m``; ``f`` the first message's
  id; ``n`` how many; ``k`` the token naming the batch for the node that
  published it; ``u`` the JSON list of the uids the messages are for, or
  ``0`` when one of them is a broadcast, so that a node none of whose
  members is among them passes the batch by without decoding ``d``; ``d``
  the messages' JSON, one row ``[ts, sender, kind, to, text]`` each, and
  ``room`` after them for a broadcast in a room other than the default one;
- a join (:class:`Joined`): ``t=j``, ``d`` = ``[uid, nickname, node, seq]``,
  and the member's rooms after them when it is registered again;
- a leave (:class:`Left`): ``t=l``, ``d`` = ``[uid, node]``;
- a member entering a room (:class:`Entered`): ``t=e``, ``d`` = ``[uid,
  room, seq, node]``; leaving one (:class:`Exited`): ``t=x``, ``d`` =
  ``[uid, room, node]``;
- a room made or set (:class:`RoomChanged`): ``t=r``, ``d`` = ``[room,
  owner, topic, private, slow, by, topic changed, made]``; an invitation
  (:class:`Invited`): ``t=i``, ``d`` = ``[room, uid, by]``.

A room is named by its key: its name, or ``""`` for the default room
(whatever each node calls it), as in the store.

This module is the one Python place that knows those field names; the
scripts get them from here (see ``muca.cluster.scripts``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from muca.protocol.messages import ALL, ChatMessage

#: The field names of an entry.
KIND = "t"
FIRST = "f"
COUNT = "n"
TOKEN = "k"
TO = "u"
DATA = "d"

#: The ``u`` of a batch that holds a broadcast.
BROADCAST = "0"


class Kind(StrEnum):
    """An entry's ``t``."""

    MESSAGES = "m"
    JOIN = "j"
    LEAVE = "l"
    ENTER = "e"
    EXIT = "x"
    ROOM = "r"
    INVITE = "i"


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch of messages; ``data`` (their JSON) is decoded only on demand.

    ``count`` and ``to`` are None in a batch appended by an older node
    (before they existed): its data must be decoded to know.
    """

    first: int
    token: str
    data: str
    count: int | None = None
    to: str | None = None

    def recipients(self) -> list[str] | None:
        """The uids the messages are for, or None if one is a broadcast
        (or the batch does not say)."""
        if self.to is None or self.to == BROADCAST:
            return None
        uids: list[str] = json.loads(self.to)
        return uids

    def rows(self) -> list[Any]:
        """The messages' rows, decoded (see :meth:`messages`)."""
        rows: list[Any] = json.loads(self.data)
        return rows

    def messages(
        self,
        rows: Sequence[Any],
        skip: int,
        wanted: Callable[[Sequence[str]], bool],
    ) -> list[ChatMessage]:
        """The messages of ``rows`` (:meth:`rows`) after the first ``skip``
        that are broadcasts or for which ``wanted`` of their recipients is
        true, with their ids."""
        first = self.first
        accepted = []
        for index in range(skip, len(rows)):
            row = rows[index]
            if len(row) == 5:
                ts, sender, kind, to, text = row
                room = ""
            else:
                ts, sender, kind, to, text, room = row
            if kind == ALL or wanted(to):
                accepted.append(
                    ChatMessage(
                        first + index, ts, sender, kind, tuple(to), text, room=room
                    )
                )
        return accepted


@dataclass(frozen=True, slots=True)
class Joined:
    """``uid`` joined as ``nickname`` on ``node``; ``seq`` orders joins.
    ``rooms``: the keys of the rooms it is in, when its node registered it
    again (None: a join, in the default room)."""

    uid: str
    nickname: str
    node: str
    seq: int
    rooms: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Left:
    """``uid``, a member of ``node``, left."""

    uid: str
    node: str


@dataclass(frozen=True, slots=True)
class Entered:
    """``uid``, a member of ``node``, entered the room ``room`` (a key);
    ``seq`` orders entries."""

    uid: str
    room: str
    seq: int
    node: str


@dataclass(frozen=True, slots=True)
class Exited:
    """``uid``, a member of ``node``, left the room ``room`` (a key)."""

    uid: str
    room: str
    node: str


@dataclass(frozen=True, slots=True)
class RoomChanged:
    """The room ``room`` was ``made`` (by ``by``, its ``owner``) or set by
    ``by`` (``""``: registered again by a node); its settings now, and
    whether its topic changed."""

    room: str
    owner: str
    topic: str
    private: bool
    slow: int
    by: str
    topic_changed: bool
    made: bool


@dataclass(frozen=True, slots=True)
class Invited:
    """``uid`` may enter the room ``room``, invited by ``by``."""

    room: str
    uid: str
    by: str


Entry = Batch | Joined | Left | Entered | Exited | RoomChanged | Invited


@dataclass(frozen=True, slots=True)
class Publication:
    """What a node gives the publishing script for a batch of ``count``
    drafts: its ``d``, ``u`` and ``k`` (see :func:`publication`)."""

    count: int
    data: str
    to: str
    token: str

    def arguments(self, floor: int, expected: int | None) -> tuple[str, ...]:
        """The ARGV of ``scripts.PUBLISH`` (after ``maxlen``): ids after
        ``floor``; with ``expected``, only if the first id is that one."""
        return (
            str(floor),
            str(self.count),
            self.data,
            "" if expected is None else str(expected),
            self.token,
            self.to,
        )


def publication(drafts: Sequence[ChatMessage], token: str) -> Publication:
    """The batch of ``drafts``, named ``token``, as the stream will hold it."""
    data = _to_json(
        [
            (m.ts, m.sender, m.kind, m.recipients, m.text, m.room)
            if m.room
            else (m.ts, m.sender, m.kind, m.recipients, m.text)
            for m in drafts
        ]
    )
    # Who the batch is for, apart from ``data``: the nodes none of whose
    # members are among them pass it over undecoded.
    uids: set[str] = set()
    for m in drafts:
        if m.kind == ALL:
            to = BROADCAST
            break
        uids.update(m.recipients)
    else:
        to = _to_json(list(uids))
    return Publication(len(drafts), data, to, token)


def decode(fields: Mapping[str, str]) -> Entry | None:
    """The entry of a stream entry's fields; None for a kind this node does
    not know (appended by a newer node). Malformed fields raise."""
    kind = fields.get(KIND)
    if kind == Kind.MESSAGES:
        count = fields.get(COUNT)
        to = fields.get(TO)
        if count is None or to is None:
            return Batch(int(fields[FIRST]), fields.get(TOKEN, ""), fields[DATA])
        return Batch(
            int(fields[FIRST]), fields.get(TOKEN, ""), fields[DATA], int(count), to
        )
    if kind == Kind.JOIN:
        data = json.loads(fields[DATA])
        uid, nickname, node, seq = data[:4]
        if len(data) > 4:
            return Joined(uid, nickname, node, int(seq), _keys(data[4]))
        return Joined(uid, nickname, node, int(seq))
    if kind == Kind.LEAVE:
        uid, node = json.loads(fields[DATA])
        return Left(uid, node)
    if kind == Kind.ENTER:
        uid, room, seq, node = json.loads(fields[DATA])
        return Entered(uid, room, int(seq), node)
    if kind == Kind.EXIT:
        uid, room, node = json.loads(fields[DATA])
        return Exited(uid, room, node)
    if kind == Kind.ROOM:
        room, owner, topic, private, slow, by, changed, made = json.loads(fields[DATA])
        return RoomChanged(
            room, owner, topic, bool(private), int(slow), by, bool(changed), bool(made)
        )
    if kind == Kind.INVITE:
        room, uid, by = json.loads(fields[DATA])
        return Invited(room, uid, by)
    return None


def _keys(value: Any) -> tuple[str, ...]:
    """A JSON list of room keys (Redis's JSON gives an empty one as ``{}``)."""
    return tuple(value) if isinstance(value, list) else ()


def encode(entry: Entry) -> dict[str, str]:
    """The fields of ``entry``, in the order the scripts write them."""
    if isinstance(entry, Batch):
        fields = {KIND: Kind.MESSAGES.value, FIRST: str(entry.first)}
        if entry.count is not None and entry.to is not None:
            fields[COUNT] = str(entry.count)
            fields[TOKEN] = entry.token
            fields[TO] = entry.to
        else:
            fields[TOKEN] = entry.token
        fields[DATA] = entry.data
        return fields
    if isinstance(entry, Joined):
        data: list[Any] = [entry.uid, entry.nickname, entry.node, entry.seq]
        if entry.rooms is not None:
            data.append(list(entry.rooms))
        return {KIND: Kind.JOIN.value, DATA: _to_json(data)}
    if isinstance(entry, Left):
        return {KIND: Kind.LEAVE.value, DATA: _to_json([entry.uid, entry.node])}
    if isinstance(entry, Entered):
        data = [entry.uid, entry.room, entry.seq, entry.node]
        return {KIND: Kind.ENTER.value, DATA: _to_json(data)}
    if isinstance(entry, Exited):
        data = [entry.uid, entry.room, entry.node]
        return {KIND: Kind.EXIT.value, DATA: _to_json(data)}
    if isinstance(entry, RoomChanged):
        data = [
            entry.room,
            entry.owner,
            entry.topic,
            int(entry.private),
            entry.slow,
            entry.by,
            int(entry.topic_changed),
            int(entry.made),
        ]
        return {KIND: Kind.ROOM.value, DATA: _to_json(data)}
    data = [entry.room, entry.uid, entry.by]
    return {KIND: Kind.INVITE.value, DATA: _to_json(data)}


#: JSON as the stream holds it: compact, UTF-8 as is; rows of plain values
#: have no cycles to look for (a quarter of the time of a batch).
_to_json = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False
).encode
