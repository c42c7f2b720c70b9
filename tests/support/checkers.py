"""Password checkers for the login tests: :class:`SlowChecker` answers each
login only when the test says so, so a test can see what waits meanwhile."""

from __future__ import annotations

from twisted.cred import checkers, credentials, error
from twisted.internet import defer
from zope.interface import implementer


@implementer(checkers.ICredentialsChecker)
class SlowChecker:
    """A checker that answers only when the test says so."""

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self) -> None:
        self.pending: list[tuple[object, defer.Deferred]] = []

    def requestAvatarId(self, creds):  # noqa: N802
        answer: defer.Deferred = defer.Deferred()
        self.pending.append((creds, answer))
        return answer

    def answer(self) -> None:
        """Answer the first pending request: right when PASS is 'pw'."""
        creds, answer = self.pending.pop(0)
        if creds.password in ("pw", b"pw"):
            answer.callback(creds.username)
        else:
            answer.errback(error.UnauthorizedLogin())
