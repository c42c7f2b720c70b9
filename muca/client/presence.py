"""The console lines that say who joined and who left the room.

One line per change (``Mary joined``, ``Tony left``), naming at most
:data:`MOST_NAMED` people (``Ann, Bob, Cy and 35 others joined``); changes
that follow one another within :data:`BURST_SECONDS` rewrite the same line
as long as it is still the newest in the console, so that a room filling up
(40 people joining in a few seconds) takes one line, not forty.
"""

from __future__ import annotations

from collections.abc import Sequence

from muca.protocol.messages import Peer

#: Most names a presence line spells out.
MOST_NAMED = 3
#: Changes closer together than this are one burst: one line for them all.
BURST_SECONDS = 3.0


def names_text(names: Sequence[str]) -> str:
    """``Mary``, ``Mary and Tony``, ``Ann, Bob, Cy and 3 others``."""
    if len(names) > MOST_NAMED:
        return f"{', '.join(names[:MOST_NAMED])} and {len(names) - MOST_NAMED} others"
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def room_line(peers: Sequence[Peer]) -> str:
    """The line for a connection's first peer list."""
    count = len(peers)
    people = "1 person" if count == 1 else f"{count} people"
    return f"in the chat room, {people}: {names_text([p.nickname for p in peers])}"


class PresenceLines:
    """Turns peer list changes into console lines, a burst into one line."""

    def __init__(self) -> None:
        self._joined: list[str] = []
        self._left: list[str] = []
        self._at = float("-inf")

    def change(
        self,
        joined: Sequence[Peer],
        left: Sequence[Peer],
        now: float,
        still_newest: bool,
    ) -> tuple[str, bool]:
        """The line for this change and whether it replaces the last one
        (``still_newest``: the last presence line is still the console's
        newest)."""
        rewrite = still_newest and now - self._at <= BURST_SECONDS
        if not rewrite:
            self._joined, self._left = [], []
        self._at = now
        self._joined.extend(p.nickname for p in joined)
        self._left.extend(p.nickname for p in left)
        parts = []
        if self._joined:
            parts.append(f"{names_text(self._joined)} joined")
        if self._left:
            parts.append(f"{names_text(self._left)} left")
        return "; ".join(parts), rewrite
