"""The known users of a server with ``--auth`` and a history: every user id
that has joined, with the nickname it was last seen with, for offline
delivery (a ``SEND`` to a known id that is away is kept for it) and for the
``KNOWN`` list a client with the ``known`` capability gets after its first
``LIST``. Plain Python: the node (``muca.server.node``) loads it from the
store and keeps it up to date, on every node of a cluster alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from muca.protocol.messages import MAX_KNOWN
from muca.store.base import KnownUser


class KnownUsers:
    """User ids that have joined, the least recently seen first, each with
    the nickname it last had (``None`` when it joined before nicknames were
    kept). ``uid in known`` is what the room asks."""

    def __init__(self) -> None:
        # Insertion order is recency: seeing a user again moves it last.
        self._nicknames: dict[str, str | None] = {}

    def __contains__(self, uid: object) -> bool:
        return uid in self._nicknames

    def __iter__(self) -> Iterator[str]:
        return iter(self._nicknames)

    def __len__(self) -> int:
        return len(self._nicknames)

    def load(self, users: Iterable[KnownUser]) -> None:
        """Add what the store remembers (least recently seen first); users
        seen here since stay the most recent."""
        loaded: dict[str, str | None] = {}
        for user in users:
            loaded[user.uid] = user.nickname
        for uid, nickname in self._nicknames.items():
            loaded.pop(uid, None)
            loaded[uid] = nickname
        self._nicknames = loaded

    def seen(self, uid: str, nickname: str) -> bool:
        """``uid`` joined or left as ``nickname`` just now; True if it was
        not known before."""
        new = self._nicknames.pop(uid, False) is False
        self._nicknames[uid] = nickname
        return new

    def away(
        self, present: Callable[[str], bool], limit: int = MAX_KNOWN
    ) -> list[dict[str, str]]:
        """``KNOWN``'s entries: the known users not ``present``, the most
        recently seen first, at most ``limit``; a user whose nickname was
        never recorded is listed under its user id."""
        entries: list[dict[str, str]] = []
        for uid in reversed(self._nicknames):
            if len(entries) >= limit:
                break
            if not present(uid):
                entries.append({"UN": self._nicknames[uid] or uid, "UID": uid})
        return entries
