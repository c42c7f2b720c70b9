"""Password checks for ``JOIN`` through ``twisted.cred``.

The checkers come from twistd's standard ``--auth`` option
(``strcred.AuthOptionMixin``): ``--auth memory:alice:secret``,
``--auth file:users.txt`` and the other strcred plugins. The user name a
checker sees is the ``JOIN``'s ``UID``: the user id is what identifies a
user in MUCA (nicknames are only what others see and may change).

strcred's checkers disagree on types: ``memory:`` keeps ``str`` names and
passwords, ``file:`` keeps ``bytes``. :class:`AnyPasswordChecker` asks each
configured checker with both, so that a user may be in any of them.

Passwords never reach a log: nothing here logs credentials, and a checker
that fails unexpectedly is logged without them.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.cred import credentials, error
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import Interface, implementer

log = Logger()


class IChatUser(Interface):
    """A user allowed to join the chat room (the avatar is the user id)."""


@implementer(IRealm)
class ChatRealm:
    """Turns an authenticated user id into an :class:`IChatUser` avatar."""

    def requestAvatar(self, avatarId, mind, *interfaces):  # noqa: N802, N803
        """The avatar is the user id itself; logging out needs nothing."""
        if IChatUser not in interfaces:
            raise NotImplementedError("MUCA only knows chat users")
        return IChatUser, avatarId, lambda: None


@implementer(ICredentialsChecker)
class AnyPasswordChecker:
    """Accepts a user name and password that any of ``checkers`` accepts.

    Each checker is asked with ``str`` credentials and then with their UTF-8
    ``bytes``, since strcred's checkers compare one or the other.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)  # noqa: N815

    def __init__(self, checkers: Sequence[ICredentialsChecker]) -> None:
        self.checkers = list(checkers)

    @defer.inlineCallbacks
    def requestAvatarId(self, creds):  # noqa: N802
        """Fire with the user id (as ``str``) or fail with ``UnauthorizedLogin``."""
        name, password = creds.username, creds.password
        attempts = (
            credentials.UsernamePassword(name, password),
            credentials.UsernamePassword(name.encode("utf-8"), password.encode()),
        )
        for checker in self.checkers:
            for attempt in attempts:
                try:
                    yield checker.requestAvatarId(attempt)
                except error.UnauthorizedLogin:
                    continue
                except Exception:
                    log.failure(
                        "password checker {checker} failed for user id {uid!r}",
                        checker=type(checker).__name__,
                        uid=name,
                    )
                    continue
                return name
        raise error.UnauthorizedLogin()


def make_portal(checkers: Sequence[ICredentialsChecker]) -> Portal | None:
    """A portal over ``checkers``, or ``None`` when there are none (no auth)."""
    if not checkers:
        return None
    return Portal(ChatRealm(), [AnyPasswordChecker(checkers)])


def check_password(
    portal: Portal, uid: str, password: str | None
) -> defer.Deferred[bool]:
    """Fire with True when ``password`` is right for ``uid``; never fails."""
    if password is None:
        return defer.succeed(False)
    login = portal.login(credentials.UsernamePassword(uid, password), None, IChatUser)
    login.addCallbacks(lambda _: True, lambda _: False)
    return login
