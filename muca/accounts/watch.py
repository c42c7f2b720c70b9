"""What ``muca-admin`` changes, noticed by a running server: every few
seconds it reads the role and disabled flag of the users joined on it (on
the store's thread, never the reactor's), disconnects those whose account
is disabled now, and keeps its admins' set true; and the rooms' moderators
(``muca-admin room moderator``)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from muca.protocol.messages import ACCOUNT_DISABLED
from muca.store.accounts import ADMIN

log = Logger()

#: Seconds between two reads: a change shows within this (and one read).
WATCH_INTERVAL = 2.0

#: What a disabled user is told before its connection closes.
DISABLED_REASON = "your account has been disabled by the server's admin"


class AccountWatch:
    """Reads the accounts of ``node``'s joined users every ``interval``
    seconds from ``accounts.store``; a read that fails is logged and tried
    again at the next interval. ``start`` and ``stop`` it with the service.
    """

    def __init__(
        self, node: Any, accounts: Any, interval: float = WATCH_INTERVAL
    ) -> None:
        self.node = node
        self.accounts = accounts
        self.interval = interval
        self._loop = LoopingCall(self.check)
        self._loop.clock = node.clock

    def start(self) -> None:
        """Read every ``interval`` seconds from now on."""
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        """Read no more."""
        if self._loop.running:
            self._loop.stop()

    def check(self) -> Deferred[None] | None:
        """One read of the joined users' accounts, and what follows from it
        (the loop waits for it before the next)."""
        store = self.accounts.store
        d: Deferred[Any] = succeed(None)
        if self.node.keeps_rooms:
            d = store.moderators().addCallbacks(
                self.node.moderation.apply_kept, self._failed
            )
        uids = [member.uid for member in self.node.room.directory.members()]
        if uids:
            d.addCallback(lambda _: store.account_states(uids))
            d.addCallbacks(self._apply, self._failed)
        return d

    def _apply(self, states: dict[str, tuple[str, bool]]) -> None:
        directory = self.node.room.directory
        admins = self.accounts.admins
        for uid, (role, disabled) in states.items():
            if role == ADMIN and not disabled:
                admins.add(uid)
            else:
                admins.discard(uid)
            member = directory.member(uid)
            if disabled and member is not None:
                log.info("muca: {uid!r} is disabled: disconnected", uid=uid)
                connection = member.connection
                connection.send_error(ACCOUNT_DISABLED, DISABLED_REASON)
                connection.close()

    def _failed(self, failure: Any) -> None:
        log.error(
            "muca: reading the accounts failed: {reason}",
            reason=failure.getErrorMessage(),
        )
