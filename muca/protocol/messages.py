"""The commands of ``docs/protocol.md`` as small typed values.

Parsing turns a decoded JSON object into one of these values or raises a
:class:`ProtocolError` carrying the wire code and a readable reason. The
``*_payload`` builders make the objects that a server sends. Nothing here
touches a socket.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_NICKNAME = 64
MAX_UID = 254

# ERROR codes.
BAD_JSON = "BAD_JSON"
BAD_COMMAND = "BAD_COMMAND"
FRAME_TOO_LONG = "FRAME_TOO_LONG"
NOT_JOINED = "NOT_JOINED"
NO_RECIPIENT = "NO_RECIPIENT"
UNKNOWN_RECIPIENT = "UNKNOWN_RECIPIENT"
FROM_MISMATCH = "FROM_MISMATCH"
SLOW_CONSUMER = "SLOW_CONSUMER"
STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
BAD_QUERY = "BAD_QUERY"
# A cluster node cannot reach the shared broker: nothing was accepted.
CLUSTER_UNAVAILABLE = "CLUSTER_UNAVAILABLE"
# The server stopped before handling a frame it had read (also ACK FAIL).
SERVER_SHUTDOWN = "SERVER_SHUTDOWN"
# Rooms (capability "rooms"): ENTER, EXIT, SEND with ROOM, ROOMSET, INVITE.
NO_SUCH_ROOM = "NO_SUCH_ROOM"
BAD_ROOM = "BAD_ROOM"
INVITE_ONLY = "INVITE_ONLY"
NOT_IN_ROOM = "NOT_IN_ROOM"
ALREADY_IN_ROOM = "ALREADY_IN_ROOM"
# A server that does not offer rooms yet (a node of a cluster) to a client
# that asked for them.
ROOMS_UNAVAILABLE = "ROOMS_UNAVAILABLE"
# Moderation: a banned user cannot enter; only the owner may set a room.
BANNED = "BANNED"
NOT_ALLOWED = "NOT_ALLOWED"
# Moderation (capability "moderation", authenticating servers): a muted
# user's SEND, a SEND faster than the room's slow mode; moderation on a
# cluster's node (not there yet).
MUTED = "MUTED"
SLOW_MODE = "SLOW_MODE"
MODERATION_UNAVAILABLE = "MODERATION_UNAVAILABLE"
# A DELETE of an id that is no message kept (or kept no more).
NO_SUCH_MESSAGE = "NO_SUCH_MESSAGE"

# ACK FAIL codes.
UID_TAKEN = "UID_TAKEN"
NICK_TAKEN = "NICK_TAKEN"
BAD_JOIN = "BAD_JOIN"
ALREADY_JOINED = "ALREADY_JOINED"
AUTH_FAILED = "AUTH_FAILED"
SERVER_FULL = "SERVER_FULL"
# Accounts (--auth db): REGISTER's and PASSWORD's refusals, and the ERROR
# before a disabled account's connection closes.
BAD_INVITE = "BAD_INVITE"
WEAK_PASSWORD = "WEAK_PASSWORD"
REGISTRATION_CLOSED = "REGISTRATION_CLOSED"
ACCOUNT_DISABLED = "ACCOUNT_DISABLED"

# MSG types.
ALL = "ALL"
GROUP = "GROUP"
PRIVATE = "PRIVATE"

PRESENCE_DELTA = "presence-delta"
HISTORY = "history"
KNOWN = "known"
ROOMS = "rooms"
SEARCH = "search"
MODERATION = "moderation"
#: Most known users one ``KNOWN`` lists (the most recently seen).
MAX_KNOWN = 1000

#: Most messages one ``HISTORY BEFORE`` may ask for.
MAX_HISTORY_LIMIT = 200
#: ``LIMIT`` when a ``HISTORY BEFORE`` gives none.
DEFAULT_HISTORY_LIMIT = 50
#: Most messages one ``SEARCH`` may ask for, and its ``LIMIT`` by default.
MAX_SEARCH_LIMIT = 50
DEFAULT_SEARCH_LIMIT = 20
#: Most messages a ``JOIN`` with ``SINCE`` catches up on (the newest).
MAX_SINCE = 1000
#: The largest message id: the stores keep ids in signed 64-bit integers.
MAX_MESSAGE_ID = 2**63 - 1
_OUT_OF_RANGE = "{} is out of range: message ids are below 2**63"

#: Longest room name, and the characters one may hold (after lowering).
MAX_ROOM_NAME = 32
_ROOM_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
#: Longest topic a ``ROOMSET`` may give.
MAX_TOPIC = 300
#: Longest slow mode a ``ROOMSET`` may give, in seconds (a day).
MAX_SLOW = 86400


class ProtocolError(Exception):
    """A command the server refuses with ``ERROR``."""

    def __init__(self, code: str, reason: str, ref: str | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.ref = ref


class JoinRefused(Exception):
    """A ``JOIN`` the server refuses with ``ACK`` ``FAIL``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Join:
    """A client's request to join the room."""

    nickname: str
    uid: str
    version: int = 1
    password: str | None = None
    caps: frozenset[str] = frozenset()
    since: int | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """A chat message for the server to deliver; ``to`` empty is a broadcast."""

    text: str
    to: tuple[str, ...]
    sender: str
    #: The room of a broadcast (a rooms client's ``ROOM``, its name), or
    #: None: the default room.
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Enter:
    """Enter a room (creating it when it does not exist and one may)."""

    room: str


@dataclass(frozen=True, slots=True)
class Exit:
    """Leave a room."""

    room: str


@dataclass(frozen=True, slots=True)
class RoomSet:
    """Change a room's settings; ``None``: that one stays as it is."""

    room: str
    topic: str | None = None
    private: bool | None = None
    slow: int | None = None


@dataclass(frozen=True, slots=True)
class Invite:
    """Let a user into a (private) room."""

    room: str
    uid: str


@dataclass(frozen=True, slots=True)
class History:
    """Scroll-back: up to ``limit`` readable messages with an id below ``before``."""

    before: int
    limit: int = DEFAULT_HISTORY_LIMIT
    #: The room to scroll back in (a rooms client's ``ROOM``, its name), or
    #: None: the user's own private and group messages (and the default
    #: room's broadcasts for a client without rooms).
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Register:
    """Make an account (``--auth db``), before ``JOIN``; ``invitation``: the
    ``INVITE`` code, if one was given."""

    uid: str
    password: str
    invitation: str | None = None


@dataclass(frozen=True, slots=True)
class PasswordChange:
    """A joined user's new password, with its current one."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Search:
    """``SEARCH``: up to ``limit`` readable messages matching ``query`` (the
    words as typed: ``muca.store.search`` parses them), in ``room`` (None:
    every room one is in, and one's private and group messages), from
    ``sender``, with an id below ``before``, newest first."""

    query: str
    room: str | None = None
    sender: str | None = None
    before: int = MAX_MESSAGE_ID
    limit: int = DEFAULT_SEARCH_LIMIT


#: Longest REASON a moderation command may give.
MAX_REASON = 300
#: Longest ban or mute with an end, in seconds (a year); FOR null: for ever.
MAX_SANCTION = 366 * 86400
#: The moderation commands (a client with the ``moderation`` capability).
MODERATION_COMMANDS = frozenset({"KICK", "BAN", "UNBAN", "MUTE", "UNMUTE", "MODERATOR"})


@dataclass(frozen=True, slots=True)
class Moderate:
    """A moderation command: ``action`` (one of
    :data:`MODERATION_COMMANDS`) on ``uid`` in ``room`` (None: the whole
    server), for ``seconds`` (None: for ever; BAN and MUTE), why;
    ``named``: MODERATOR's ``ON`` (made a moderator, or no longer)."""

    action: str
    room: str | None
    uid: str
    seconds: int | None = None
    reason: str = ""
    named: bool = True


@dataclass(frozen=True, slots=True)
class Delete:
    """``DELETE``: the text of message ``id`` removed, why."""

    id: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """``REPORT``: message ``id`` shown to its room's moderators, why."""

    id: int
    reason: str = ""


#: The longest invitation code read (a code muca-admin makes is 22).
MAX_INVITE = 64


ClientCommand = (
    Join
    | Send
    | History
    | Search
    | Enter
    | Exit
    | RoomSet
    | Invite
    | Register
    | PasswordChange
    | Moderate
    | Delete
    | Report
)
RoomCommand = Enter | Exit | RoomSet | Invite
#: The commands only a client with the ``rooms`` capability has.
ROOM_COMMANDS = frozenset({"ENTER", "EXIT", "ROOMSET", "INVITE"})


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_text(value: object) -> bool:
    """True for a ``str`` that can be sent as UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Characters no identity may hold: controls (NUL, newline, ESC of terminal
# escapes), format characters (zero-width, bidirectional overrides) and the
# line and paragraph separators.
_UNSEEN = {"Cc": "control", "Cf": "format", "Zl": "line separator", "Zp": "separator"}


def _identity_problem(field_name: str, value: str) -> str | None:
    """What no nickname or user id may be: blank, padded, or holding a
    character that is not seen as itself (see :data:`_UNSEEN`)."""
    if value != value.strip():
        if not value.strip():
            return f"{field_name} must not be blank"
        return f"{field_name} must not start or end with a space"
    # isprintable() is true for every string without such characters (and
    # the cheap common case); otherwise find the one to name.
    if not value.isprintable():
        for char in value:
            kind = _UNSEEN.get(unicodedata.category(char))
            if kind is not None:
                return (
                    f"{field_name} must not contain {kind} characters"
                    f" (U+{ord(char):04X} at position {value.index(char) + 1})"
                )
    return None


def normal_form(value: str) -> str:
    """The NFC form in which nicknames and user ids are kept and compared
    (ASCII is its own)."""
    if value.isascii():
        return value
    return unicodedata.normalize("NFC", value)


def nickname_problem(nickname: object) -> str | None:
    """Say what is wrong with a nickname (in NFC), or ``None`` when it is
    valid."""
    if not is_text(nickname):
        return "UN must be a string"
    assert isinstance(nickname, str)
    if not nickname:
        return "UN must not be empty"
    if len(nickname) > MAX_NICKNAME:
        return f"UN must be at most {MAX_NICKNAME} characters"
    problem = _identity_problem("UN", nickname)
    if problem:
        return problem
    if "," in nickname:
        return "UN must not contain a comma"
    if nickname == ALL:
        return "UN 'ALL' is reserved for broadcasts"
    return None


def uid_problem(uid: object) -> str | None:
    """Say what is wrong with a user id (in NFC), or ``None`` when it is
    valid."""
    if not is_text(uid):
        return "UID must be a string"
    assert isinstance(uid, str)
    if not uid:
        return "UID must not be empty"
    if len(uid) > MAX_UID:
        return f"UID must be at most {MAX_UID} characters"
    problem = _identity_problem("UID", uid)
    if problem:
        return problem
    if uid == ALL:
        return "UID 'ALL' is reserved for broadcasts"
    return None


def room_name(value: object, ref: str) -> str:
    """The name of the room a client wrote (lowered, without a leading
    ``#``); raise :class:`ProtocolError` ``BAD_ROOM`` (``REF`` ``ref``)
    unless it is 1 to 32 characters of a-z, 0-9, ``-`` and ``_``."""
    if not isinstance(value, str):
        raise ProtocolError(BAD_ROOM, "ROOM must be a string, a room's name", ref)
    name = value[1:] if value.startswith("#") else value
    name = name.lower() if name.isascii() else name
    if not name or len(name) > MAX_ROOM_NAME or not _ROOM_CHARACTERS.issuperset(name):
        shown = value[:40] if is_text(value) else "?"
        raise ProtocolError(
            BAD_ROOM,
            f"{shown!r} is no room name: 1 to {MAX_ROOM_NAME} characters of"
            " a-z, 0-9, - and _ (an optional # before it)",
            ref,
        )
    return name


def unknown_command(cmd: str) -> ProtocolError:
    """The ``BAD_COMMAND`` of a command this server (or, for the rooms
    commands, this client's capabilities) does not have."""
    name = cmd[:40]
    # REF echoes the command only when it can be written back as UTF-8.
    ref = name if is_text(name) else None
    return ProtocolError(BAD_COMMAND, f"unknown command {name!r}", ref=ref)


def parse_client_command(
    obj: dict[str, Any], rooms: bool = False, moderation: bool = False
) -> ClientCommand:
    """Turn an object a client sent into a command.

    ``rooms``: the client joined with the ``rooms`` capability; without it
    the rooms commands are unknown and ``SEND`` ignores ``ROOM``, as
    before rooms existed. Raises :class:`JoinRefused` for an invalid
    ``JOIN`` and :class:`ProtocolError` for anything else that is not a
    valid command. ``moderation``: the client joined with that capability
    (on an authenticating server): the moderation commands are known.
    """
    cmd = obj.get("CMD")
    if cmd == "SEND":
        return _parse_send(obj, rooms)
    if cmd == "JOIN":
        return _parse_join(obj)
    if cmd == "HISTORY":
        return _parse_history(obj, rooms)
    if cmd == "REGISTER":
        return _parse_register(obj)
    if cmd == "PASSWORD":
        return _parse_password(obj)
    if cmd == "SEARCH":
        return _parse_search(obj)
    if cmd is None:
        raise ProtocolError(BAD_COMMAND, "missing CMD")
    if not isinstance(cmd, str):
        raise ProtocolError(BAD_COMMAND, "CMD must be a string")
    if rooms and cmd in ROOM_COMMANDS:
        return _parse_room_command(cmd, obj)
    if moderation and cmd in MODERATION_COMMANDS:
        return _parse_moderate(cmd, obj)
    if moderation and cmd in ("DELETE", "REPORT"):
        return _parse_delete(obj, cmd)
    raise unknown_command(cmd)


def _parse_delete(obj: dict[str, Any], cmd: str) -> Delete | Report:
    message_id = obj.get("ID")
    if not (_whole(message_id) and 0 < message_id <= MAX_MESSAGE_ID):
        raise ProtocolError(
            BAD_COMMAND, f"{cmd} needs ID, a message id (a whole number > 0)", cmd
        )
    reason = obj.get("REASON", "")
    if not (is_text(reason) and len(reason) <= MAX_REASON):
        raise ProtocolError(
            BAD_COMMAND,
            f"REASON must be a string of at most {MAX_REASON} characters",
            cmd,
        )
    return Delete(message_id, reason) if cmd == "DELETE" else Report(message_id, reason)


def _parse_moderate(cmd: str, obj: dict[str, Any]) -> Moderate:
    room = obj.get("ROOM")
    if room is not None or cmd == "MODERATOR":
        room = room_name(room, cmd)
    uid = obj.get("UID")
    if not is_text(uid) or uid_problem(normal_form(uid)):
        raise ProtocolError(BAD_COMMAND, f"{cmd} needs UID, a user id", cmd)
    seconds = obj.get("FOR")
    if cmd not in ("BAN", "MUTE"):
        seconds = None
    elif seconds is not None and not (_whole(seconds) and 0 < seconds <= MAX_SANCTION):
        raise ProtocolError(
            BAD_COMMAND,
            f"FOR must be a whole number of seconds from 1 to {MAX_SANCTION},"
            " or null (for ever)",
            cmd,
        )
    reason = obj.get("REASON", "")
    if not (is_text(reason) and len(reason) <= MAX_REASON):
        raise ProtocolError(
            BAD_COMMAND,
            f"REASON must be a string of at most {MAX_REASON} characters",
            cmd,
        )
    named = obj.get("ON", True)
    if not isinstance(named, bool):
        raise ProtocolError(BAD_COMMAND, "ON must be true or false", cmd)
    return Moderate(cmd, room, normal_form(uid), seconds, reason, named)


def _parse_room_command(cmd: str, obj: dict[str, Any]) -> RoomCommand:
    room = room_name(obj.get("ROOM"), cmd)
    if cmd == "ENTER":
        return Enter(room)
    if cmd == "EXIT":
        return Exit(room)
    if cmd == "INVITE":
        uid = obj.get("UID")
        if not is_text(uid) or uid_problem(normal_form(uid)):
            raise ProtocolError(BAD_COMMAND, "INVITE needs UID, a user id", cmd)
        return Invite(room, normal_form(uid))
    topic, private, slow = obj.get("TOPIC"), obj.get("PRIVATE"), obj.get("SLOW")
    if topic is not None and not (is_text(topic) and len(topic) <= MAX_TOPIC):
        raise ProtocolError(
            BAD_COMMAND,
            f"TOPIC must be a string of at most {MAX_TOPIC} characters",
            cmd,
        )
    if private is not None and not isinstance(private, bool):
        raise ProtocolError(BAD_COMMAND, "PRIVATE must be true or false", cmd)
    if slow is not None and not (_whole(slow) and 0 <= slow <= MAX_SLOW):
        raise ProtocolError(
            BAD_COMMAND,
            f"SLOW must be a whole number of seconds from 0 to {MAX_SLOW}",
            cmd,
        )
    if topic is None and private is None and slow is None:
        raise ProtocolError(
            BAD_COMMAND, "ROOMSET needs TOPIC, PRIVATE or SLOW (any of them)", cmd
        )
    return RoomSet(room, topic, private, slow)


def _parse_register(obj: dict[str, Any]) -> Register:
    uid, password, invitation = obj.get("UID"), obj.get("PASS"), obj.get("INVITE")
    if is_text(uid):
        uid = normal_form(uid)
    problem = uid_problem(uid)
    if problem:
        raise ProtocolError(BAD_COMMAND, problem, "REGISTER")
    if not is_text(password):
        raise ProtocolError(BAD_COMMAND, "REGISTER needs PASS, a string", "REGISTER")
    if invitation is not None and not (
        is_text(invitation) and 0 < len(invitation) <= MAX_INVITE
    ):
        raise ProtocolError(
            BAD_COMMAND,
            f"INVITE must be a code of 1 to {MAX_INVITE} characters",
            "REGISTER",
        )
    return Register(uid, password, invitation)


def _parse_password(obj: dict[str, Any]) -> PasswordChange:
    old, new = obj.get("OLD"), obj.get("NEW")
    if not is_text(old) or not is_text(new):
        raise ProtocolError(
            BAD_COMMAND, "PASSWORD needs OLD and NEW, strings", "PASSWORD"
        )
    return PasswordChange(old, new)


def _parse_join(obj: dict[str, Any]) -> Join:
    nickname, uid = obj.get("UN"), obj.get("UID")
    # Kept and compared in NFC: "é" typed as one character or as "e" and
    # a combining accent is one nickname.
    if is_text(nickname):
        nickname = normal_form(nickname)
    if is_text(uid):
        uid = normal_form(uid)
    problem = nickname_problem(nickname) or uid_problem(uid)
    if problem:
        raise JoinRefused(BAD_JOIN, problem)
    password = obj.get("PASS")
    if password is not None and not is_text(password):
        raise JoinRefused(BAD_JOIN, "PASS must be a string")
    version = obj.get("V", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        version = 1
    caps = obj.get("CAPS", ())
    if not isinstance(caps, list):
        caps = ()
    since = obj.get("SINCE")
    if since is not None and not (_whole(since) and since >= 0):
        raise JoinRefused(BAD_JOIN, "SINCE must be a message id (a whole number >= 0)")
    if since is not None and since > MAX_MESSAGE_ID:
        raise JoinRefused(BAD_JOIN, _OUT_OF_RANGE.format("SINCE"))
    return Join(
        nickname=nickname,
        uid=uid,
        version=version,
        password=password,
        caps=frozenset(c for c in caps if isinstance(c, str)),
        since=since,
    )


def _parse_history(obj: dict[str, Any], rooms: bool = False) -> History:
    before = obj.get("BEFORE")
    limit = obj.get("LIMIT", DEFAULT_HISTORY_LIMIT)
    if not (_whole(before) and before > 0):
        raise ProtocolError(
            BAD_COMMAND,
            "HISTORY needs BEFORE, a message id (a whole number > 0)",
            ref="HISTORY",
        )
    if before > MAX_MESSAGE_ID:
        raise ProtocolError(
            BAD_COMMAND,
            _OUT_OF_RANGE.format("BEFORE"),
            ref="HISTORY",
        )
    if not (_whole(limit) and 1 <= limit <= MAX_HISTORY_LIMIT):
        raise ProtocolError(
            BAD_COMMAND,
            f"HISTORY LIMIT must be a whole number from 1 to {MAX_HISTORY_LIMIT}",
            ref="HISTORY",
        )
    room = obj.get("ROOM")
    if rooms and room is not None:
        return History(before, limit, room_name(room, "HISTORY"))
    return History(before=before, limit=limit)


def _parse_search(obj: dict[str, Any]) -> Search:
    query = obj.get("Q")
    if not is_text(query):
        raise ProtocolError(
            BAD_QUERY, "SEARCH needs Q, the words to search for", ref="SEARCH"
        )
    room = obj.get("ROOM")
    if room is not None:
        room = room_name(room, "SEARCH")
    sender = obj.get("FROM")
    if sender is not None and not (is_text(sender) and sender):
        raise ProtocolError(
            BAD_COMMAND, "SEARCH's FROM must be a user id", ref="SEARCH"
        )
    before = obj.get("BEFORE", MAX_MESSAGE_ID)
    if not (_whole(before) and 0 < before <= MAX_MESSAGE_ID):
        raise ProtocolError(
            BAD_COMMAND,
            "SEARCH's BEFORE must be a message id (a whole number > 0)",
            ref="SEARCH",
        )
    limit = obj.get("LIMIT", DEFAULT_SEARCH_LIMIT)
    if not (_whole(limit) and 1 <= limit <= MAX_SEARCH_LIMIT):
        raise ProtocolError(
            BAD_COMMAND,
            f"SEARCH LIMIT must be a whole number from 1 to {MAX_SEARCH_LIMIT}",
            ref="SEARCH",
        )
    return Search(query, room, sender, before, limit)


def _parse_send(obj: dict[str, Any], rooms: bool = False) -> Send:
    text = obj.get("MSG")
    to = obj.get("TO")
    sender = obj.get("FROM")
    if not is_text(text):
        raise ProtocolError(BAD_COMMAND, "SEND needs MSG, a string", ref="SEND")
    # Ids are echoed back in UNKNOWN_RECIPIENT: they must be writable as UTF-8.
    if not isinstance(to, list) or not all(is_text(uid) for uid in to):
        raise ProtocolError(
            BAD_COMMAND, "SEND needs TO, a list of user ids", ref="SEND"
        )
    if not isinstance(sender, str):
        raise ProtocolError(BAD_COMMAND, "SEND needs FROM, a string", ref="SEND")
    room = obj.get("ROOM")
    if rooms and room is not None:
        return Send(text, tuple(to), sender, room_name(room, "SEND"))
    return Send(text=text, to=tuple(to), sender=sender)


# What a server sends.


def ack_okay_payload(max_frame: int | None = None) -> dict[str, Any]:
    """``ACK`` ``OKAY``, with the longest frame accepted when given."""
    if max_frame is None:
        return {"CMD": "ACK", "TYPE": "OKAY"}
    return {"CMD": "ACK", "TYPE": "OKAY", "MAX_FRAME": max_frame}


def ack_fail_payload(code: str, reason: str) -> dict[str, Any]:
    """``ACK`` ``FAIL`` with the extension's code and reason."""
    return {"CMD": "ACK", "TYPE": "FAIL", "CODE": code, "REASON": reason}


def error_payload(code: str, reason: str, ref: str | None = None) -> dict[str, Any]:
    """``ERROR`` with a code, a readable reason and the command it answers."""
    payload = {"CMD": "ERROR", "CODE": code, "REASON": reason}
    if ref is not None:
        payload["REF"] = ref
    return payload


def list_payload(entries: Iterable[dict[str, str]]) -> dict[str, Any]:
    """``LIST`` of ``{"UN": …, "UID": …}`` entries, in join order."""
    return {"CMD": "LIST", "DATA": list(entries)}


def presence_payload(
    joined: Sequence[dict[str, str]], left: Sequence[str]
) -> dict[str, Any]:
    """``PRESENCE`` delta: who joined and who left since the last one."""
    return {"CMD": "PRESENCE", "JOINED": list(joined), "LEFT": list(left)}


def known_payload(entries: Iterable[dict[str, str]]) -> dict[str, Any]:
    """``KNOWN``: the known users who are away, ``{"UN": …, "UID": …}``
    each, most recently seen first."""
    return {"CMD": "KNOWN", "DATA": list(entries)}


def rooms_payload(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``ROOMS``: the rooms a user may see, ``{"ROOM", "TOPIC", "COUNT",
    "IN"}`` each."""
    return {"CMD": "ROOMS", "DATA": list(entries)}


def entered_payload(room: str, topic: str) -> dict[str, Any]:
    """``ENTERED``: the answer to ``ENTER``."""
    return {"CMD": "ENTERED", "ROOM": room, "TOPIC": topic}


def topic_payload(room: str, topic: str, by: str) -> dict[str, Any]:
    """``TOPIC``: a room's new topic, and who set it."""
    return {"CMD": "TOPIC", "ROOM": room, "TOPIC": topic, "BY": by}


def notice_payload(room: str, text: str) -> dict[str, Any]:
    """``NOTICE``: what a moderator did, to the room's members."""
    return {"CMD": "NOTICE", "ROOM": room, "TEXT": text}


def deleted_payload(message_id: int) -> dict[str, Any]:
    """``DELETED``: the text of message ``ID`` is gone."""
    return {"CMD": "DELETED", "ID": message_id}


def kicked_payload(by: str, reason: str) -> dict[str, Any]:
    """``KICKED``: off the server, by whom and why (the connection closes)."""
    return {"CMD": "KICKED", "BY": by, "REASON": reason}


def in_room(payload: dict[str, Any], room: str) -> dict[str, Any]:
    """A room's ``LIST``, ``PRESENCE`` or ``MSG`` as a rooms client gets
    it: the same object with ``ROOM``."""
    return {**payload, "ROOM": room}


def search_payload(more: bool) -> dict[str, Any]:
    """``SEARCH``: the end of a search's answer; ``MORE``: older matches."""
    return {"CMD": "SEARCH", "MORE": more}


def history_payload(more: bool, room: str | None = None) -> dict[str, Any]:
    """``HISTORY``: the end of a replay or scroll-back; ``MORE``: older exist;
    ``ROOM``: the room it was of (a room's replay or ``HISTORY ROOM``)."""
    if room is None:
        return {"CMD": "HISTORY", "MORE": more}
    return {"CMD": "HISTORY", "MORE": more, "ROOM": room}


def message_payload(
    kind: str,
    text: str,
    sender: str,
    timestamp_ms: int | None = None,
    to: Sequence[str] | None = None,
    ident: int | None = None,
) -> dict[str, Any]:
    """``MSG`` as delivered; ``TS``, ``TO`` and ``ID`` are the optional
    extensions."""
    payload: dict[str, Any] = {"CMD": "MSG", "TYPE": kind, "MSG": text, "FROM": sender}
    if timestamp_ms is not None:
        payload["TS"] = timestamp_ms
    if to is not None:
        payload["TO"] = list(to)
    if ident is not None:
        payload["ID"] = ident
    return payload


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A message the server accepted: what is delivered, stored and replayed.

    ``id`` is the room-wide id (0 in a draft that has none yet), ``ts``
    the receive time in milliseconds since the epoch, ``recipients`` the
    user ids it is for (empty for a broadcast, ``kind`` ``ALL``),
    ``nickname`` the sender's nickname then.
    """

    id: int
    ts: int
    sender: str
    kind: str
    recipients: tuple[str, ...]
    text: str
    #: The sender's nickname when it sent this (None: not known, e.g. a
    #: message stored before nicknames were kept); only replays show it.
    nickname: str | None = None
    #: The room of a broadcast; "" is the default room (and every private
    #: or group message: those belong to no room).
    room: str = ""

    def payload(self) -> dict[str, Any]:
        """The ``MSG`` object delivered for this message."""
        to = self.recipients if self.kind == GROUP else None
        return message_payload(self.kind, self.text, self.sender, self.ts, to, self.id)

    def history_payload(self) -> dict[str, Any]:
        """The ``MSG`` object replayed from the history (``HIST``)."""
        payload = self.payload()
        payload["HIST"] = True
        if self.nickname is not None:
            payload["UN"] = self.nickname
        return payload


# What a client receives.


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to ``JOIN``: ``ok`` or a failure with code and reason;
    ``max_frame`` is the server's frame limit when it says (``MAX_FRAME``)."""

    ok: bool
    code: str | None = None
    reason: str | None = None
    max_frame: int | None = None


@dataclass(frozen=True, slots=True)
class Peer:
    """One entry of the peer list."""

    nickname: str
    uid: str


@dataclass(frozen=True, slots=True)
class PeerList:
    """The full peer list, in join order."""

    peers: tuple[Peer, ...]


@dataclass(frozen=True, slots=True)
class Presence:
    """A change of the peer list: who joined, whose user ids left."""

    joined: tuple[Peer, ...]
    left: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """A delivered chat message."""

    kind: str
    text: str
    sender: str
    timestamp_ms: int | None = None
    to: tuple[str, ...] = field(default=())
    ident: int | None = None
    history: bool = False


@dataclass(frozen=True, slots=True)
class HistoryEnd:
    """The end of a replay or scroll-back; ``more``: older messages exist;
    ``room``: the room it was of (a room's replay or ``HISTORY ROOM``)."""

    more: bool
    room: str | None = None


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``ERROR`` from the server."""

    code: str
    reason: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class SearchEnd:
    """The end of a ``SEARCH``'s answer; ``more``: older matches exist."""

    more: bool


ServerCommand = (
    Ack | PeerList | Presence | Message | ServerError | HistoryEnd | SearchEnd
)


def _peers(data: object) -> tuple[Peer, ...]:
    if not isinstance(data, list):
        raise ProtocolError(BAD_COMMAND, "peer list must be a list")
    peers = []
    for entry in data:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("UN"), str)
            and isinstance(entry.get("UID"), str)
        ):
            raise ProtocolError(BAD_COMMAND, "peer entry needs UN and UID strings")
        peers.append(Peer(entry["UN"], entry["UID"]))
    return tuple(peers)


def parse_server_command(obj: dict[str, Any]) -> ServerCommand | None:
    """Turn an object a server sent into a command.

    Returns ``None`` for a command this client does not know (a newer
    server's extension); raises :class:`ProtocolError` for a known command
    with missing or ill-typed fields.
    """
    cmd = obj.get("CMD")
    if cmd == "MSG":
        kind, text, sender = obj.get("TYPE"), obj.get("MSG"), obj.get("FROM")
        if not (
            isinstance(kind, str) and isinstance(text, str) and isinstance(sender, str)
        ):
            raise ProtocolError(BAD_COMMAND, "MSG needs TYPE, MSG and FROM strings")
        timestamp = obj.get("TS")
        to = obj.get("TO")
        ident = obj.get("ID")
        return Message(
            kind=kind,
            text=text,
            sender=sender,
            timestamp_ms=timestamp if isinstance(timestamp, int) else None,
            to=tuple(u for u in to if isinstance(u, str))
            if isinstance(to, list)
            else (),
            ident=ident if _whole(ident) else None,
            history=obj.get("HIST") is True,
        )
    if cmd == "HISTORY":
        room = obj.get("ROOM")
        return HistoryEnd(
            more=obj.get("MORE") is True,
            room=room if isinstance(room, str) and room else None,
        )
    if cmd == "SEARCH":
        return SearchEnd(more=obj.get("MORE") is True)
    if cmd == "LIST":
        return PeerList(_peers(obj.get("DATA")))
    if cmd == "PRESENCE":
        left = obj.get("LEFT", [])
        if not isinstance(left, list) or not all(isinstance(u, str) for u in left):
            raise ProtocolError(BAD_COMMAND, "PRESENCE LEFT must be a list of ids")
        return Presence(_peers(obj.get("JOINED", [])), tuple(left))
    if cmd == "ACK":
        kind = obj.get("TYPE")
        if kind not in ("OKAY", "FAIL"):
            raise ProtocolError(BAD_COMMAND, "ACK needs TYPE OKAY or FAIL")
        code, reason = obj.get("CODE"), obj.get("REASON")
        limit = obj.get("MAX_FRAME")
        usable = isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
        return Ack(
            ok=kind == "OKAY",
            code=code if isinstance(code, str) else None,
            reason=reason if isinstance(reason, str) else None,
            max_frame=limit if usable else None,
        )
    if cmd == "ERROR":
        code, reason, ref = obj.get("CODE"), obj.get("REASON"), obj.get("REF")
        return ServerError(
            code=code if isinstance(code, str) else "ERROR",
            reason=reason if isinstance(reason, str) else "",
            ref=ref if isinstance(ref, str) else None,
        )
    return None


def join_payload(
    nickname: str,
    uid: str,
    password: str | None = None,
    caps: Sequence[str] = (PRESENCE_DELTA, HISTORY),
    since: int | None = None,
) -> dict[str, Any]:
    """``JOIN`` as our client sends it: native framing and extensions;
    ``since``: catch up on what came after that message id."""
    payload: dict[str, Any] = {"CMD": "JOIN", "UN": nickname, "UID": uid, "V": 2}
    if caps:
        payload["CAPS"] = list(caps)
    if password is not None:
        payload["PASS"] = password
    if since is not None:
        payload["SINCE"] = since
    return payload


def search_request_payload(
    query: str,
    room: str | None = None,
    sender: str | None = None,
    before: int | None = None,
    limit: int = DEFAULT_SEARCH_LIMIT,
) -> dict[str, Any]:
    """``SEARCH``: ask for the newest ``limit`` matches of ``query``."""
    payload: dict[str, Any] = {"CMD": "SEARCH", "Q": query, "LIMIT": limit}
    if room is not None:
        payload["ROOM"] = room
    if sender is not None:
        payload["FROM"] = sender
    if before is not None:
        payload["BEFORE"] = before
    return payload


def history_request_payload(
    before: int, limit: int, room: str | None = None
) -> dict[str, Any]:
    """``HISTORY BEFORE``: ask for older messages (in ``room`` when given)."""
    payload: dict[str, Any] = {"CMD": "HISTORY", "BEFORE": before, "LIMIT": limit}
    if room is not None:
        payload["ROOM"] = room
    return payload


def send_payload(text: str, to: Sequence[str], sender: str) -> dict[str, Any]:
    """``SEND``; an empty ``to`` is a broadcast."""
    return {"CMD": "SEND", "MSG": text, "TO": list(to), "FROM": sender}
