"""IRC's names: nicknames (RFC 2812's characters, rfc1459 case mapping),
channels as MUCA rooms, and the stable IRC form of a MUCA nickname that
is not a valid IRC nick.

Pure functions: nothing here knows a connection or the node.
"""

from __future__ import annotations

import hashlib
import string

#: The longest nickname an IRC user may register (``NICKLEN``).
NICKLEN = 30
#: The longest channel name, ``#`` and a MUCA room's 32 characters.
CHANNELLEN = 33
#: The hostname part of every MUCA user's IRC mask.
USER_HOST = "muca"

_SPECIAL = "[]\\`_^{|}"
_FIRST = frozenset(string.ascii_letters + _SPECIAL)
_REST = frozenset(string.ascii_letters + string.digits + _SPECIAL + "-")
_RFC1459 = str.maketrans(
    string.ascii_uppercase + "[]\\~", string.ascii_lowercase + "{}|^"
)


def irc_lower(name: str) -> str:
    """``name`` under the rfc1459 case mapping (``CASEMAPPING=rfc1459``):
    ASCII letters lowered, and ``[]\\~`` are ``{}|^``."""
    return name.translate(_RFC1459)


def valid_nick(nick: str) -> bool:
    """Whether ``nick`` is a nickname an IRC user may take: 1 to
    :data:`NICKLEN` characters, a letter or one of ``[]\\`_^{|}`` first,
    then letters, digits, those and ``-``."""
    return (
        0 < len(nick) <= NICKLEN
        and nick[0] in _FIRST
        and all(character in _REST for character in nick[1:])
    )


def irc_nick(nickname: str, uid: str) -> str:
    """How IRC users see the MUCA user ``uid`` named ``nickname``: the
    nickname itself when it is a valid IRC nick, else a valid form of it
    (other characters as ``_``) followed by ``|`` and four characters
    derived from the user id, the same on every connection and node."""
    if valid_nick(nickname):
        return nickname
    cleaned = "".join(c if c in _REST else "_" for c in nickname)
    if not cleaned or cleaned[0] not in _FIRST:
        cleaned = "_" + cleaned
    digest = hashlib.sha256(uid.encode("utf-8")).hexdigest()[:4]
    return f"{cleaned[: NICKLEN - 5]}|{digest}"


def user_part(uid: str) -> str:
    """The user part of a MUCA user's IRC mask (``nick!user@muca``): what
    comes before any ``@`` in its user id, the characters a mask may hold,
    at most 10 of them."""
    local = uid.split("@", 1)[0]
    kept = "".join(c for c in local if c in _REST or c == ".")[:10]
    return kept or "user"


def channel(room: str) -> str:
    """The IRC channel of a MUCA room."""
    return "#" + room
