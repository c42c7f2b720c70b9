"""Password checks for ``JOIN`` through ``twisted.cred``: the checkers.

Logging in with them (the portal, the realm, the sessions it makes) is
``muca.session.realm``.

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

:func:`make_checker` is ``--auth``'s parser: strcred's, with a mistake
refused as one line naming the option (a ``file:`` with a line that is not
``uid:password``, a ``memory:`` user without a password) instead of being
accepted silently or called an "Unexpected error".
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.cred import credentials, error, strcred
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.filepath import FilePath
from zope.interface import implementer

log = Logger()

#: How ``--auth memory:`` is written, for its usage error.
MEMORY_USAGE = "--auth memory:USER:PASSWORD[:USER:PASSWORD...]"


@implementer(IRealm)
class CheckersOnly:
    """The realm of the ``--auth`` portal, which only carries the checkers:
    users log in through the node's own portal (``muca.session.realm``),
    whose realm makes their sessions."""

    def requestAvatar(self, avatarId, mind, *interfaces):  # noqa: N802, N803
        """Never asked: logins go through the session portal."""
        raise NotImplementedError("log in through muca.session.realm")


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
        # A refusal that says more than "unauthorized" (a disabled account,
        # muca.accounts.desk) is the one given when no checker accepts.
        refusal = error.UnauthorizedLogin()
        for checker in self.checkers:
            for attempt in attempts:
                try:
                    yield checker.requestAvatarId(attempt)
                except error.UnauthorizedLogin as refused:
                    if type(refused) is not error.UnauthorizedLogin:
                        refusal = refused
                    continue
                except Exception:
                    log.failure(
                        "password checker {checker} failed for user id {uid!r}",
                        checker=type(checker).__name__,
                        uid=name,
                    )
                    continue
                return name
        raise refusal


def make_portal(checkers: Sequence[ICredentialsChecker]) -> Portal | None:
    """A portal over ``checkers``, or ``None`` when there are none (no auth):
    the node's session portal takes its checker."""
    if not checkers:
        return None
    return Portal(CheckersOnly(), [AnyPasswordChecker(checkers)])


def make_checker(description: str) -> ICredentialsChecker:
    """The checker of one ``--auth METHOD:ARGS``, or a :class:`usage.UsageError`
    that names the option in one line (never echoing a password)."""
    method, _, argument = description.partition(":")
    if method == "memory" and argument.count(":") % 2 == 0:
        # An even number of colons is an odd number of fields: a user
        # without a password (strcred says "argstring must be in format U:P:...").
        raise usage.UsageError(
            f"--auth memory: a user without a password; write {MEMORY_USAGE}"
        )
    if method == "file":
        check_password_file(argument)
    try:
        return strcred.makeChecker(description)
    except strcred.InvalidAuthType:
        raise usage.UsageError(
            f"--auth: {method!r} is no authentication method (see --help-auth)"
        ) from None
    except strcred.UnsupportedInterfaces:
        raise usage.UsageError(
            f"--auth {method}: it does not check user ids and passwords"
        ) from None
    except Exception as problem:
        raise usage.UsageError(f"--auth {method}: {problem}") from None


def check_password_file(path: str) -> None:
    """Raise a :class:`usage.UsageError` naming the file and the line when
    ``path`` is not a ``--auth file:`` password file: every line that is not
    blank is ``uid:password`` (UTF-8, one colon, a user id before it; there
    are no comments). ``FilePasswordDB`` would skip a line without a colon
    and cut a password at a second one, so that its user could never log in.
    """
    option = f"--auth file:{path}"
    if not path:
        raise usage.UsageError("--auth file: needs a file name: --auth file:PATH")
    if not FilePath(path).isfile():
        raise usage.UsageError(f"--auth file: no such file: {path}")
    try:
        with open(path, "rb") as lines:
            for number, raw in enumerate(lines, 1):
                # FilePasswordDB strips the line's end (newline, spaces) too.
                line = raw.rstrip()
                if not line:
                    continue
                problem = password_line_problem(line)
                if problem:
                    raise usage.UsageError(f"{option}: line {number} {problem}")
    except OSError as failed:
        raise usage.UsageError(f"{option}: {failed.strerror}") from None


def password_line_problem(line: bytes) -> str | None:
    """What is wrong with one non-blank line of a password file, if anything."""
    colon = b":"  # FilePasswordDB's default delimiter, as strcred makes it
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "is not UTF-8"
    colons = line.count(colon)
    if colons == 0:
        return "has no ':' between user id and password"
    if colons > 1:
        return "has more than one ':' (a password cannot hold one)"
    if line.startswith(colon):
        return "has no user id before its ':'"
    return None
