"""Accounts on a running server (``--auth db``): the password checker of
``JOIN``, ``REGISTER`` and ``PASSWORD``.

:class:`Accounts` works through the node's store (its own database thread)
and :class:`~muca.accounts.passwords.PasswordHashing` (its own threads):
nothing here blocks the reactor. Answers are protocol payloads for the
connection to write; passwords are never logged, and never kept but as
their Argon2id hashes.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from typing import Any

from twisted.cred import credentials, error
from twisted.cred.checkers import ICredentialsChecker
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from muca.accounts.passwords import MAX_PASSWORD, PasswordHashing, password_problem
from muca.protocol import messages
from muca.protocol.messages import (
    AUTH_FAILED,
    BAD_INVITE,
    REGISTRATION_CLOSED,
    STORE_UNAVAILABLE,
    WEAK_PASSWORD,
)
from muca.server.logins import LoginThrottle
from muca.session.realm import AccountDisabled
from muca.store.accounts import ADMIN, Account, AccountRefused
from muca.store.base import MessageStore, StoreError

log = Logger()


class Registration(enum.Enum):
    """Who may make an account with ``REGISTER`` (``--register``)."""

    OPEN = "open"
    INVITE = "invite"
    CLOSED = "closed"


#: ``--register``'s default.
DEFAULT_REGISTRATION = Registration.INVITE


def _error(code: str, reason: str, ref: str) -> dict[str, Any]:
    return messages.error_payload(code, reason, ref)


class Accounts:
    """The accounts of one server, kept in ``store`` (opened before anybody
    connects), checked with ``hashing``.

    ``throttle`` (set by the node, None: not slowed) slows refused
    ``REGISTER`` and ``PASSWORD`` answers as it slows refused logins: a
    guessed invitation code or old password is answered later and later.
    """

    def __init__(
        self,
        store: MessageStore,
        hashing: PasswordHashing,
        registration: Registration = DEFAULT_REGISTRATION,
        clock: IReactorTime | None = None,
    ) -> None:
        self.store = store
        self.hashing = hashing
        self.registration = registration
        self.clock: Any = clock
        self.throttle: LoginThrottle | None = None
        #: The user ids of the admins among those who logged in (kept true
        #: by ``muca.accounts.watch`` while they are joined).
        self.admins: set[str] = set()

    def _clock(self) -> Any:
        """The node's clock (the global reactor for accounts used alone)."""
        if self.clock is None:
            from twisted.internet import reactor

            self.clock = reactor
        return self.clock

    def _now_ms(self) -> int:
        return int(self._clock().seconds() * 1000)

    # -- logins ----------------------------------------------------------

    @defer.inlineCallbacks
    def check(self, uid: str, password: str) -> Any:
        """Fire with ``uid`` when ``password`` is its account's, or fail
        with ``UnauthorizedLogin`` (:class:`AccountDisabled` for a right
        password of a disabled account). A user id without an account
        takes as long (a decoy hash)."""
        if len(password) > MAX_PASSWORD:
            # No password is that long: not worth hashing 64 KiB of it.
            raise error.UnauthorizedLogin()
        account = yield self.store.account(uid)
        encoded = None if account is None else account.password_hash
        right = yield self.hashing.verify(encoded, password)
        if not right or account is None:
            raise error.UnauthorizedLogin()
        if account.disabled:
            raise AccountDisabled()
        if account.role == ADMIN:
            self.admins.add(uid)
        else:
            self.admins.discard(uid)
        if self.hashing.needs_rehash(encoded):  # type: ignore[arg-type]
            # Made with older parameters: kept again with today's.
            renewed = yield self.hashing.hash(password)
            yield self.store.set_password(uid, renewed, self._now_ms(), "rehash")
        return uid

    # -- REGISTER and PASSWORD ------------------------------------------

    def register(
        self,
        uid: str,
        password: str,
        invitation: str | None,
        keys: list[Hashable],
    ) -> defer.Deferred[dict[str, Any]]:
        """``REGISTER``: the answer to write, ``REGISTERED`` or ``ERROR``
        (a refused invitation answered after the throttle's delay)."""
        ref = "REGISTER"
        if self.registration is Registration.CLOSED:
            return defer.succeed(
                _error(
                    REGISTRATION_CLOSED,
                    "this server takes no new accounts: ask its admin for one",
                    ref,
                )
            )
        if self.registration is Registration.OPEN:
            invitation = None
        elif invitation is None:
            return self._slowed(
                keys,
                _error(
                    BAD_INVITE,
                    "this server registers by invitation: REGISTER needs"
                    " INVITE, a code from its admin",
                    ref,
                ),
            )
        problem = password_problem(uid, password)
        if problem:
            return defer.succeed(_error(WEAK_PASSWORD, problem, ref))
        d = self.hashing.hash(password)

        def hashed(encoded: str) -> defer.Deferred[None]:
            now = self._now_ms()
            account = Account(uid, encoded, created=now)
            return self.store.register(account, invitation, now)

        def registered(_: object) -> dict[str, Any]:
            log.info("muca: account {uid!r} registered", uid=uid)
            return {"CMD": "REGISTERED", "UID": uid}

        def refused(failure: Any) -> Any:
            if failure.check(AccountRefused):
                answer = _error(failure.value.code, failure.value.reason, ref)
                if failure.value.code == BAD_INVITE:
                    return self._slowed(keys, answer)
                return answer
            return self._unavailable(failure, ref)

        return d.addCallback(hashed).addCallbacks(registered, refused)

    def change_password(
        self, uid: str, old: str, new: str, keys: list[Hashable]
    ) -> defer.Deferred[dict[str, Any]]:
        """``PASSWORD`` of the joined ``uid``: ``{"CMD": "PASSWORD",
        "CHANGED": true}`` or ``ERROR`` (a wrong ``OLD`` answered after the
        throttle's delay, as a wrong login is)."""
        ref = "PASSWORD"
        problem = password_problem(uid, new)
        if problem:
            return defer.succeed(_error(WEAK_PASSWORD, problem, ref))
        d = self.check(uid, old)

        def checked(_: object) -> defer.Deferred[bool]:
            return self.hashing.hash(new).addCallback(
                lambda encoded: self.store.set_password(uid, encoded, self._now_ms())
            )

        def changed(_: object) -> dict[str, Any]:
            log.info("muca: account {uid!r} changed its password", uid=uid)
            return {"CMD": "PASSWORD", "CHANGED": True}

        def refused(failure: Any) -> Any:
            if failure.check(error.UnauthorizedLogin):
                return self._slowed(
                    keys, _error(AUTH_FAILED, "OLD is not your password", ref)
                )
            return self._unavailable(failure, ref)

        return d.addCallback(checked).addCallbacks(changed, refused)

    def _slowed(
        self, keys: list[Hashable], answer: dict[str, Any]
    ) -> defer.Deferred[dict[str, Any]]:
        """``answer`` to a refused attempt, after the throttle's delay."""
        throttle = self.throttle
        wait = 0.0 if throttle is None else throttle.refused(keys)
        if wait <= 0:
            return defer.succeed(answer)
        return task.deferLater(self._clock(), wait, lambda: answer)

    @staticmethod
    def _unavailable(failure: Any, ref: str) -> dict[str, Any]:
        if not failure.check(StoreError):
            log.failure("muca: an account's {ref} failed", failure, ref=ref)
        return _error(
            STORE_UNAVAILABLE, "the accounts' database cannot be reached now", ref
        )


@implementer(ICredentialsChecker)
class AccountChecker:
    """``--auth db``'s checker: a ``JOIN``'s ``UID`` and ``PASS`` against
    the accounts (see :meth:`Accounts.check`)."""

    credentialInterfaces = (credentials.IUsernamePassword,)  # noqa: N815

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    def requestAvatarId(self, creds: Any) -> defer.Deferred[Any]:  # noqa: N802
        """The user id, or ``UnauthorizedLogin``."""
        name, password = creds.username, creds.password
        if not isinstance(name, str) or not isinstance(password, str):
            # muca.server.auth asks again with bytes, for strcred's file
            # checker: one check of the accounts is enough.
            return defer.fail(error.UnauthorizedLogin())
        return self.accounts.check(name, password)
