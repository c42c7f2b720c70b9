"""Logging in, for every front-end alike: one ``twisted.cred`` path.

:class:`ChatRealm` hands back a :class:`~muca.session.user.ChatUser` bound
to the front-end's client (the *mind* of the login), whose logout leaves the
room. Without ``--auth`` the portal's only checker is
:class:`AnonymousChecker`, which takes the user id a ``JOIN`` claims; with it,
the ``--auth`` checkers (``muca.server.auth``) prove it by password.
:class:`Entrance` puts the login throttle (``muca.server.logins``) behind
the portal: a refused login is answered later and later, whatever checks
it, and a right password at once.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from twisted.cred import credentials, error
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

from muca.protocol.messages import ACCOUNT_DISABLED, AUTH_FAILED, Join, JoinRefused
from muca.server.logins import LoginThrottle
from muca.session.interfaces import IChatClient, IChatUser
from muca.session.user import ChatUser, Node

log = Logger()

_AUTH_FAILED = JoinRefused(AUTH_FAILED, "wrong or missing password")
_DISABLED = JoinRefused(
    ACCOUNT_DISABLED, "this account is disabled by the server's admin"
)


class AccountDisabled(error.UnauthorizedLogin):
    """A right password for a disabled account (``--auth db``): refused
    with ``ACCOUNT_DISABLED``, told only to one who knew the password, and
    not slowed."""


class IClaimedId(Interface):
    """Credentials that only name a user id (a ``JOIN`` without a password)."""

    username = Attribute("The user id claimed, as str.")


@implementer(IClaimedId)
class ClaimedId:
    """A user id claimed without proof."""

    def __init__(self, username: str) -> None:
        self.username = username


@implementer(ICredentialsChecker)
class AnonymousChecker:
    """The checker of a server without ``--auth``: any claimed user id is
    taken as it is, and a password, if one is sent, is not looked at."""

    credentialInterfaces = (IClaimedId, credentials.IUsernamePassword)  # noqa: N815

    def requestAvatarId(self, creds: Any) -> defer.Deferred[str]:  # noqa: N802
        """The user id claimed."""
        return defer.succeed(creds.username)


@implementer(IRealm)
class ChatRealm:
    """Turns a user id into a :class:`ChatUser` of ``node`` bound to the
    login's mind (an :class:`IChatClient`)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:  # noqa: N802, N803
        """A fresh user per login; its logout leaves the room."""
        if IChatUser not in interfaces:
            raise NotImplementedError("MUCA only knows chat users")
        uid = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else avatarId
        user = ChatUser(self.node, uid, IChatClient(mind))
        return IChatUser, user, user.leave


def session_portal(node: Node, auth: Portal | None) -> Portal:
    """The portal every login of ``node`` goes through: ``auth``'s checkers
    (``--auth``), or the anonymous one when there is none."""
    checkers = list(auth.checkers.values()) if auth is not None else []
    return Portal(ChatRealm(node), checkers or [AnonymousChecker()])


def _uninterrupted(d: defer.Deferred[Any]) -> defer.Deferred[Any]:
    """``d``'s result, on a Deferred whose cancelling stops waiting for it
    without cancelling ``d``: a password checker is never interrupted (a
    connection that goes during its check leaves it to finish unheard)."""
    waiting: defer.Deferred[Any] = defer.Deferred(lambda _: None)

    def passed(result: Any) -> None:
        if waiting.called:
            return
        if isinstance(result, Failure):
            waiting.errback(result)
        else:
            waiting.callback(result)

    d.addBoth(passed)
    return waiting


def connection_key(client: IChatClient) -> Hashable:
    """What failed logins are counted under for one connection."""
    return ("connection", id(client))


def join_credentials(join: Join) -> Any:
    """What a ``JOIN`` offers as proof of its ``UID``."""
    if join.password is None:
        return ClaimedId(join.uid)
    return credentials.UsernamePassword(join.uid, join.password)


class Entrance:
    """Logins of one node: the portal, then for a refused one the
    throttle's delay.

    A password is checked at once and a right one gets in at once; a
    refused one is counted under the login's keys (the connection, the
    user id, the address) and answered after the throttle's delay, which
    grows with the failures under them (see ``LoginThrottle``).
    """

    def __init__(
        self, portal: Portal, throttle: LoginThrottle | None, clock: IReactorTime
    ) -> None:
        self.portal = portal
        self.throttle = throttle
        self.clock = clock

    def log_in(
        self, client: IChatClient, join: Join
    ) -> defer.Deferred[tuple[IChatUser, Any] | None]:
        """Fire with the user and its logout, or with None once the client
        has been refused (``AUTH_FAILED``, ``ACCOUNT_DISABLED``). Cancelling
        it (the connection is going) stops waiting and fires nothing at the
        client."""
        login = _uninterrupted(
            self.portal.login(join_credentials(join), client, IChatUser)
        )
        return login.addCallbacks(
            self._logged_in, self._refused, errbackArgs=(client, join)
        )

    def _logged_in(self, result: tuple[Any, IChatUser, Any]) -> tuple[IChatUser, Any]:
        _, user, logout = result
        return user, logout

    def _refused(
        self, failure: Failure, client: IChatClient, join: Join
    ) -> defer.Deferred[None] | None:
        if failure.check(defer.CancelledError):
            return None
        if failure.check(AccountDisabled):
            # Its password was right: nothing to slow down.
            client.refuse(join.uid, join.nickname, _DISABLED)
            return None
        if not failure.check(error.UnauthorizedLogin, error.UnhandledCredentials):
            log.failure("login of user id {uid!r}", failure, uid=join.uid)
        throttle = self.throttle
        wait = (
            0.0 if throttle is None else throttle.refused(self.keys(client, join.uid))
        )
        if wait <= 0:
            client.refuse(join.uid, join.nickname, _AUTH_FAILED)
            return None
        later = task.deferLater(
            self.clock, wait, client.refuse, join.uid, join.nickname, _AUTH_FAILED
        )
        # Cancelled when the connection goes meanwhile: nothing to tell.
        later.addErrback(lambda cancelled: cancelled.trap(defer.CancelledError))
        return later.addCallback(lambda _: None)

    def forget(self, client: IChatClient) -> None:
        """The connection has closed: its own failures no longer count."""
        if self.throttle is not None:
            self.throttle.forget(connection_key(client))

    @staticmethod
    def keys(client: IChatClient, uid: str | None) -> list[Hashable]:
        """What an attempt on this connection is counted under: the
        connection, the user id (when one is named), the address."""
        keys: list[Hashable] = [connection_key(client)]
        if uid is not None:
            keys.append(("uid", uid))
        if client.address is not None:
            keys.append(("address", client.address))
        return keys
