"""Moderation's state on one node: each room's moderators, the bans and
mutes in force (each ended by a timer of its own when it has an end), and
when each member of a slow room last sent there.

No I/O: ``muca.server.node`` checks commands against it, keeps changes in
the store and tells the members; this module says who may do what and how
long is left.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from muca.store.base import BAN, MUTE, Sanction

#: A sanction's key: its kind, its room ("": the whole server), its user id.
Key = tuple[str, str, str]
#: The room key of a server-wide ban or mute.
SERVER = ""
#: Most moderators a room has, and bans and mutes a room (or the server)
#: holds: what moderators can make the server keep is bounded.
MAX_MODERATORS = 100
MAX_SANCTIONS = 10_000


def key_of(sanction: Sanction) -> Key:
    """The key a sanction is kept under."""
    return (sanction.kind, sanction.room, sanction.uid)


def duration_text(seconds: int | None) -> str:
    """``for 10 minutes``, ``for 1 hour``, ``for 90 seconds``; ``for ever``
    for None."""
    if seconds is None:
        return "for ever"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"for {count} {unit}{'s' if count != 1 else ''}"
    return f"for {seconds} second{'s' if seconds != 1 else ''}"


class Moderation:
    """The moderators, bans and mutes of one server (not a cluster's).

    ``ended`` is called with each timed sanction once its time is over (it
    is no longer in force by then)."""

    def __init__(self, clock: IReactorTime, ended: Callable[[Sanction], None]) -> None:
        self.clock = clock
        self._ended = ended
        #: Each room's moderators, by room name.
        self.moderators: dict[str, set[str]] = {}
        self._sanctions: dict[Key, Sanction] = {}
        # How many of them each room ("": the server) holds.
        self._counts: dict[str, int] = {}
        self._timers: dict[Key, IDelayedCall] = {}
        # The moderators as the store held them at the last read (None: not
        # read yet).
        self._kept: dict[str, set[str]] | None = None
        # Slow mode: room -> user id -> when (clock seconds) it last sent.
        self._last_sent: dict[str, dict[str, float]] = {}

    def __len__(self) -> int:
        return len(self._sanctions)

    def load(
        self, moderators: dict[str, set[str]], sanctions: Iterable[Sanction]
    ) -> list[Sanction]:
        """What the store kept; returns the sanctions whose time ended while
        the server was stopped (no longer in force: the caller forgets them)."""
        self.moderators = {room: set(uids) for room, uids in moderators.items()}
        self._kept = {room: set(uids) for room, uids in moderators.items()}
        over = []
        for sanction in sanctions:
            if self.seconds_left(sanction) == 0:
                over.append(sanction)
            else:
                self.impose(sanction)
        return over

    def now_ms(self) -> int:
        """The clock's time in ms since the epoch."""
        return int(self.clock.seconds() * 1000)

    # Roles

    def is_moderator(self, room: str, uid: str) -> bool:
        """Whether ``uid`` was named a moderator of ``room``."""
        return uid in self.moderators.get(room, ())

    def name(self, room: str, uid: str, named: bool) -> None:
        """Make ``uid`` a moderator of ``room`` (or no longer one)."""
        if named:
            self.moderators.setdefault(room, set()).add(uid)
            return
        uids = self.moderators.get(room)
        if uids is not None:
            uids.discard(uid)
            if not uids:
                del self.moderators[room]

    # Bans and mutes

    def impose(self, sanction: Sanction) -> None:
        """Put a ban or mute in force (in place of one of its key)."""
        key = key_of(sanction)
        self._cancel(key)
        if key not in self._sanctions:
            self._counts[sanction.room] = self._counts.get(sanction.room, 0) + 1
        self._sanctions[key] = sanction
        if sanction.until is not None:
            delay = max(0.0, sanction.until / 1000 - self.clock.seconds())
            self._timers[key] = self.clock.callLater(delay, self._over, key)

    def lift(self, kind: str, room: str, uid: str) -> Sanction | None:
        """End a ban or mute now; the one that was in force, if any."""
        key = (kind, room, uid)
        self._cancel(key)
        return self._forget(key)

    def _forget(self, key: Key) -> Sanction | None:
        sanction = self._sanctions.pop(key, None)
        if sanction is not None:
            left = self._counts[sanction.room] - 1
            if left:
                self._counts[sanction.room] = left
            else:
                del self._counts[sanction.room]
        return sanction

    def full(self, kind: str, room: str, uid: str) -> bool:
        """Whether a new ban or mute in ``room`` would be one too many (one
        in place of one of its key never is)."""
        return (kind, room, uid) not in self._sanctions and (
            self._counts.get(room, 0) >= MAX_SANCTIONS
        )

    def moderators_full(self, room: str, uid: str) -> bool:
        """Whether naming ``uid`` would give ``room`` one moderator too many."""
        uids = self.moderators.get(room, set())
        return uid not in uids and len(uids) >= MAX_MODERATORS

    def active(self, kind: str, room: str, uid: str) -> Sanction | None:
        """The ban or mute of ``uid`` in force in ``room`` (``SERVER``: the
        server-wide one only)."""
        sanction = self._sanctions.get((kind, room, uid))
        if sanction is not None and self.seconds_left(sanction) == 0:
            return None
        return sanction

    def banned(self, room: str, uid: str) -> Sanction | None:
        """The ban keeping ``uid`` out of ``room``."""
        return self.active(BAN, room, uid)

    def muted(self, room: str | None, uid: str) -> Sanction | None:
        """The mute keeping ``uid`` from sending in ``room`` (None: a
        private or group message): the server-wide one, else the room's."""
        sanction = self.active(MUTE, SERVER, uid)
        if sanction is None and room is not None:
            sanction = self.active(MUTE, room, uid)
        return sanction

    def seconds_left(self, sanction: Sanction) -> int | None:
        """Whole seconds until it ends (rounded up; 0: over), None: never."""
        if sanction.until is None:
            return None
        return max(0, math.ceil((sanction.until - self.now_ms()) / 1000))

    def _over(self, key: Key) -> None:
        self._timers.pop(key, None)
        sanction = self._forget(key)
        if sanction is not None:
            self._ended(sanction)

    def _cancel(self, key: Key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None and timer.active():
            timer.cancel()

    def stop(self) -> None:
        """Cancel every timer (the server stops; the store keeps the ends)."""
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()

    # Slow mode

    def slow_wait(self, room: str, slow: int, uid: str) -> int:
        """Whole seconds ``uid`` must still wait before sending in a room
        of slow mode ``slow`` (0: it may send now)."""
        last = self._last_sent.get(room, {}).get(uid)
        if last is None:
            return 0
        return max(0, math.ceil(last + slow - self.clock.seconds()))

    def sent(self, room: str, slow: int, uid: str, members: int) -> None:
        """``uid`` sent in a slow room now. What is kept is bounded: past
        twice the room's members, the times older than ``slow`` go."""
        times = self._last_sent.setdefault(room, {})
        now = self.clock.seconds()
        times[uid] = now
        if len(times) > 2 * members + 16:
            for other, when in list(times.items()):
                if when + slow <= now:
                    del times[other]

    def apply_kept(self, kept: dict[str, set[str]]) -> None:
        """The moderators the store holds now (``muca-admin room moderator``
        on a running server): what changed there since the last read is
        applied here (a change made here and written meanwhile is no change)."""
        seen = self._kept
        self._kept = {room: set(uids) for room, uids in kept.items()}
        if seen is None:
            return
        for room in set(seen) | set(kept):
            before, now = seen.get(room, set()), kept.get(room, set())
            for uid in now - before:
                self.name(room, uid, True)
            for uid in before - now:
                self.name(room, uid, False)

    def forget_room(self, room: str) -> None:
        """A room's slow mode went off: its send times are no longer needed."""
        self._last_sent.pop(room, None)
