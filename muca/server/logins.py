"""Failed logins slowed down: how long a login attempt waits before its
password is checked.

Plain Python: time comes from an ``IReactorTime`` given by the caller, and
nothing here touches a socket. The connection (``muca.server.connection``)
asks it around every password check, whatever ``--auth`` method checks it;
accounts (``REGISTER``, ``--auth db``) are meant to ask it the same way.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

from twisted.internet.interfaces import IReactorTime

#: Seconds the attempt after a first failure waits; each failure doubles it.
DEFAULT_LOGIN_DELAY = 0.25
#: The longest wait, however many failures: nobody is locked out for longer.
DEFAULT_LOGIN_DELAY_MAX = 16.0
#: Records kept at most (user ids and addresses an attacker may invent).
DEFAULT_MAX_RECORDS = 100_000
# Failures are forgotten one per this many times the longest wait without a
# failure (64 s by default): a delay never decays faster than it is served.
_QUIET_FACTOR = 4.0
# Past this many failures the delay is the cap anyway (and 2**n stays small).
_MAX_COUNT = 64


class LoginThrottle:
    """Growing, capped delays for login attempts after failed ones.

    Every attempt names its keys: e.g. the connection, the user id and the
    address it comes from. After ``n`` failures under a key, the next
    attempt under it waits until ``first × 2^(n−1)`` seconds (at most
    ``cap``) after the last failure; an attempt under several keys waits for
    the longest. :meth:`wait` says how long, :meth:`failed` records a
    failure. A success records nothing and resets nothing: a right password
    waits like a wrong one (otherwise the wait itself would tell a guesser
    it is wrong), but never longer than ``cap``, so nobody can lock a user
    out, and an attempt under keys with no recent failure never waits.
    Each ``quiet`` seconds (4 × ``cap`` by default) without a failure forget
    one failure of a key. At most ``max_records`` keys are kept; past it
    the oldest failures are forgotten first.
    """

    def __init__(
        self,
        clock: IReactorTime,
        first: float = DEFAULT_LOGIN_DELAY,
        cap: float = DEFAULT_LOGIN_DELAY_MAX,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        if not 0 < first <= cap or max_records < 1:
            raise ValueError("a login throttle needs 0 < first <= cap and records")
        self.first = first
        self.cap = cap
        self.quiet = _QUIET_FACTOR * cap
        self.max_records = max_records
        self._clock = clock
        # key -> [failures, time of the last one]; in order of the last
        # failure (a key failing again moves to the end), oldest first.
        self._records: dict[Hashable, list[float]] = {}

    def __len__(self) -> int:
        return len(self._records)

    def delay(self, failures: int) -> float:
        """Seconds between the last of ``failures`` and the next attempt."""
        if failures <= 0:
            return 0.0
        return min(self.first * 2.0 ** (min(failures, _MAX_COUNT) - 1), self.cap)

    def failures(self, key: Hashable) -> int:
        """Failures still counted under ``key`` now (after their decay)."""
        record = self._records.get(key)
        if record is None:
            return 0
        return self._decayed(record, self._clock.seconds())

    def wait(self, keys: Iterable[Hashable]) -> float:
        """Seconds an attempt under all of ``keys`` must wait before its
        password is checked (0: at once); never more than ``cap``."""
        now = self._clock.seconds()
        longest = 0.0
        records = self._records
        for key in keys:
            record = records.get(key)
            if record is not None:
                count, last = record
                longest = max(longest, last + self.delay(int(count)) - now)
        return min(longest, self.cap)

    def failed(self, keys: Iterable[Hashable]) -> None:
        """An attempt under ``keys`` had a wrong or missing password."""
        now = self._clock.seconds()
        records = self._records
        for key in keys:
            record = records.pop(key, None)
            count = 0 if record is None else self._decayed(record, now)
            # Re-inserted: the dict keeps keys in order of their last failure.
            records[key] = [min(count + 1, _MAX_COUNT), now]
        self._prune(now)

    def forget(self, key: Hashable) -> None:
        """Drop what is known of ``key`` (a connection that has closed)."""
        self._records.pop(key, None)

    def _decayed(self, record: list[float], now: float) -> int:
        count, last = record
        return max(0, int(count) - math.floor((now - last) / self.quiet))

    def _prune(self, now: float) -> None:
        records = self._records
        while records:
            key = next(iter(records))
            if len(records) <= self.max_records and self._decayed(records[key], now):
                return
            del records[key]
