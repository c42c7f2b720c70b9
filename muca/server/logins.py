"""Failed logins slowed down: how long the refusal of a wrong password
waits before it is answered.

Plain Python: time comes from an ``IReactorTime`` given by the caller, and
nothing here touches a socket. The logins (``muca.session.realm``) ask it
after every refused password, whatever ``--auth`` method checked it, and so
do the accounts' ``REGISTER`` (a wrong invitation) and ``PASSWORD`` (a
wrong old password, ``muca.accounts.desk``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

from twisted.internet.interfaces import IReactorTime

#: Seconds the refusal after a first failure waits; each failure doubles it.
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
    """Growing, capped delays for the refusals of wrong passwords.

    Every attempt names its keys: e.g. the connection, the user id and the
    address it comes from. A password is checked at once, and a right one
    is answered at once, never slowed (a guesser learns nothing from that:
    it is in). A wrong one is counted under each key by :meth:`refused`,
    which says how long its refusal waits: not at all for a first failure,
    then until ``first × 2^(n−1)`` seconds after the refusal of the
    ``n``-th failure before it (under the key that makes it wait longest),
    at most ``cap`` from now. A connection's next frames wait for that
    answer, so guessing on one connection, from one address or for one user
    id goes slower and slower (parallel guesses under one key queue up
    behind each other's refusals), and nobody is locked out: the right
    password gets in at once, and a wrong one waits at most ``cap``. Each
    ``quiet`` seconds (4 × ``cap`` by default) without a failure forget one
    failure of a key. At most ``max_records`` keys are kept; past it the
    oldest failures are forgotten first.
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
        """Seconds between the refusal of the last of ``failures`` and
        the next one's."""
        if failures <= 0:
            return 0.0
        return min(self.first * 2.0 ** (min(failures, _MAX_COUNT) - 1), self.cap)

    def failures(self, key: Hashable) -> int:
        """Failures still counted under ``key`` now (after their decay)."""
        record = self._records.get(key)
        if record is None:
            return 0
        return self._decayed(record, self._clock.seconds())

    def refused(self, keys: Iterable[Hashable]) -> float:
        """Count a wrong or missing password under each of ``keys``; return
        the seconds its refusal waits (at most ``cap``): until ``first ×
        2^(n−1)`` seconds after the refusal of the ``n``-th failure before
        it, under the key that makes it wait longest."""
        now = self._clock.seconds()
        records = self._records
        keys = list(keys)
        counts = []
        longest = 0.0
        for key in keys:
            record = records.pop(key, None)
            if record is None:
                counts.append(0)
                continue
            count = self._decayed(record, now)
            counts.append(count)
            longest = max(longest, record[1] + self.delay(count) - now)
        answered = now + min(longest, self.cap)
        for key, count in zip(keys, counts, strict=True):
            # Re-inserted: the dict keeps keys in order of their last
            # failure, each with the time its refusal is answered.
            records[key] = [min(count + 1, _MAX_COUNT), answered]
        self._prune(now)
        return answered - now

    def forget(self, key: Hashable) -> None:
        """Drop what is known of ``key`` (a connection that has closed)."""
        self._records.pop(key, None)

    def _decayed(self, record: list[float], now: float) -> int:
        count, last = record
        # A refusal still waiting (``last`` ahead) has not begun to decay.
        return max(0, int(count) - math.floor(max(0.0, now - last) / self.quiet))

    def _prune(self, now: float) -> None:
        records = self._records
        while records:
            key = next(iter(records))
            if len(records) <= self.max_records and self._decayed(records[key], now):
                return
            del records[key]
