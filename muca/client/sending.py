"""Which sent message a server's refusal is about.

An ``ERROR`` carries no message id, and a delivered message gets no answer
at all (the sender never receives its own message). What the client knows:
the server handles one sender's ``SEND``\\ s in the order sent, and refuses
one in one of two ways:

- while reading it (*at once*): ``NO_RECIPIENT``, ``UNKNOWN_RECIPIENT``
  (naming the ids it dropped: with none left, nothing was delivered),
  ``FROM_MISMATCH``, ``BAD_COMMAND``, ``FRAME_TOO_LONG``, ``NOT_JOINED``,
  ``SERVER_SHUTDOWN`` (a frame it read but held back); these come in the
  order the messages were sent;
- after passing it on (*later*): ``STORE_UNAVAILABLE``,
  ``CLUSTER_UNAVAILABLE``, once the store or the cluster failed it; these
  may come after the answers at once to messages sent after it.

So :class:`SentMessages` keeps the messages sent in the last
:data:`SETTLE_SECONDS`, in order, and gives a refusal to the oldest of them
that can still get it: an answer at once to the oldest not answered at once
that can earn that code (``NO_RECIPIENT`` only a message to oneself,
``UNKNOWN_RECIPIENT`` only one whose ``TO`` holds the ids it names), and
that answer shows that the older ones were read without one; a later answer
to the *newest* message that was passed on and has no later answer yet: an
outage of the store or cluster refuses every message from the moment it
began until it ends, so of the messages still waiting, the newest are the
ones it hit (those sent before it were delivered without a word). It is
wrong only when the outage ends between two messages sent before the first
refusal comes back, a few milliseconds as a rule. A message with no refusal
within :data:`SETTLE_SECONDS` counts as delivered, and a refusal that
matches none is shown as the server's error only.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from muca.protocol.messages import (
    CLUSTER_UNAVAILABLE,
    NO_RECIPIENT,
    STORE_UNAVAILABLE,
    UNKNOWN_RECIPIENT,
)

#: Seconds after which a sent message with no refusal counts as delivered.
#: A cluster's refusal comes within its Redis command timeout (2 s), a
#: store's within a write; this leaves room for a slow network.
SETTLE_SECONDS = 10.0
#: Most messages kept waiting for a possible refusal (the oldest settle first).
MOST_PENDING = 1000
#: The refusals that come after the server passed the message on.
LATER = frozenset({STORE_UNAVAILABLE, CLUSTER_UNAVAILABLE})


@dataclass(eq=False)
class SentMessage:
    """One message as sent: ``recipients`` are the user ids of its ``TO``
    (none: everyone); ``serial`` counts the messages of a client from 1."""

    serial: int
    recipients: tuple[str, ...]
    text: str
    sent_at: float
    #: The server answered it while reading it (a refusal or a partial one).
    answered: bool = False
    #: The server passed it on to the store or cluster (no refusal at once
    #: that kept it back).
    passed_on: bool = True
    #: The user ids the server did not deliver it to (UNKNOWN_RECIPIENT).
    undelivered: tuple[str, ...] = field(default=())
    #: The room a broadcast was sent to (None: the default room, or a
    #: private or group message).
    room: str | None = None


@dataclass(frozen=True)
class Refusal:
    """The server refused ``message``, all of it or (``partial``) for the
    user ids in ``message.undelivered`` only."""

    message: SentMessage
    code: str
    reason: str
    partial: bool = False


class SentMessages:
    """The messages of one connection that may still be refused, in order."""

    def __init__(self, me: tuple[str, str]) -> None:
        #: Our user id and nickname: a TO of only these earns NO_RECIPIENT.
        self.me = me
        self._pending: deque[SentMessage] = deque()
        self._serial = 0

    def __len__(self) -> int:
        return len(self._pending)

    def sent(
        self,
        recipients: tuple[str, ...],
        text: str,
        now: float,
        room: str | None = None,
    ) -> SentMessage:
        """Record a message just written to the server (to ``room``)."""
        self._settle(now)
        self._serial += 1
        message = SentMessage(self._serial, recipients, text, now, room=room)
        self._pending.append(message)
        if len(self._pending) > MOST_PENDING:
            self._pending.popleft()
        return message

    def serials(self) -> set[int]:
        """The serials of the messages that may still be refused."""
        return {message.serial for message in self._pending}

    def clear(self) -> None:
        """The connection ended: nothing more will be answered."""
        self._pending.clear()

    def refused(self, code: str, reason: str, now: float) -> Refusal | None:
        """The refusal a ``SEND``'s ``ERROR`` stands for, or None when it
        matches no message sent in the last :data:`SETTLE_SECONDS`."""
        self._settle(now)
        if code in LATER:
            for message in reversed(self._pending):
                if message.passed_on:
                    self._pending.remove(message)
                    return Refusal(message, code, reason)
            return None
        for index, message in enumerate(self._pending):
            if message.answered:
                continue
            dropped = self._earns(message, code, reason)
            if dropped is None:
                continue
            # Read in order: the older ones were read without a refusal.
            for older in list(self._pending)[:index]:
                older.answered = True
            message.answered = True
            if code == UNKNOWN_RECIPIENT:
                message.undelivered = dropped
                if set(dropped) < set(message.recipients):
                    return Refusal(message, code, reason, partial=True)
            self._pending.remove(message)
            message.passed_on = False
            return Refusal(message, code, reason)
        return None

    def _earns(
        self, message: SentMessage, code: str, reason: str
    ) -> tuple[str, ...] | None:
        """The ids this code drops from ``message`` if it can have earned the
        code (all of its ids, or those an UNKNOWN_RECIPIENT names), else None."""
        if code == NO_RECIPIENT:
            if message.recipients and set(message.recipients) <= set(self.me):
                return message.recipients
            return None
        if code == UNKNOWN_RECIPIENT:
            _, _, names = reason.rpartition(": ")
            return _subsequence(names, message.recipients)
        return message.recipients

    def _settle(self, now: float) -> None:
        """Forget the messages old enough to count as delivered."""
        pending = self._pending
        while pending and now - pending[0].sent_at > SETTLE_SECONDS:
            pending.popleft()


def characters_that_fit(text: str, room: int, ascii_only: bool) -> int:
    """How many of ``text``'s first characters fit in ``room`` bytes of a
    JSON string (escaped to ASCII when ``ascii_only``), for the too-long
    message (the browser's ``tooLong`` counts the same way)."""
    sizes: dict[str, int] = {}
    count = 0
    for char in text:
        size = sizes.get(char)
        if size is None:
            escaped = json.dumps(char, ensure_ascii=ascii_only)[1:-1]
            size = sizes[char] = len(escaped.encode("utf-8"))
        room -= size
        if room < 0:
            break
        count += 1
    return count


def _subsequence(listed: str, ids: tuple[str, ...]) -> tuple[str, ...] | None:
    """The ids, in order, that ``listed`` names as ``a, b, c`` (the server
    lists dropped ids so, in TO order), or None when it names others."""
    if not listed:
        return None
    for start, uid in enumerate(ids):
        if listed == uid:
            return (uid,)
        if listed.startswith(uid + ", "):
            rest = _subsequence(listed[len(uid) + 2 :], ids[start + 1 :])
            if rest is not None:
                return (uid, *rest)
    return None
