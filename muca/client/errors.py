"""What the client raises: :class:`ClientError` and its kinds, each with a
readable one-line ``str()`` (the window shows it as it is)."""

from __future__ import annotations


class ClientError(Exception):
    """A client operation that cannot be done; ``str()`` is a readable line."""


class NotConnected(ClientError):
    """An operation that needs a connection (or a joined session) without one."""


class ConnectFailed(ClientError):
    """The server could not be reached, or did not answer, in time."""


class ConnectionClosed(ClientError):
    """The connection closed before the answer that was waited for."""


class MessageTooLong(ClientError):
    """A message that cannot fit in one frame of the server's; nothing was sent."""

    def __init__(self, length: int, most: int, size: int, limit: int) -> None:
        super().__init__(too_long_text(size, limit, most, length))
        self.length = length
        self.most = most
        self.size = size
        self.limit = limit


def too_long_text(size: int, limit: int, most: int, length: int) -> str:
    """The server's rule, as both clients state it (the browser's
    ``tooLongText`` in ``muca/web/static/sending.js`` says the same): the
    whole ``SEND`` frame in UTF-8 bytes against the server's MAX_FRAME."""
    return (
        f"message too long: {size:,} bytes, the server takes at most {limit:,}"
        f" (the whole SEND, in UTF-8); the first {most:,} of its {length:,}"
        " characters fit"
    )


class CertificateRefused(ClientError):
    """The server's TLS certificate does not name the server we asked for."""


class RoomsUnavailable(ClientError):
    """The server offers no rooms (an original server, or one that
    answered ``ROOMS_UNAVAILABLE``, as older cluster nodes did): it has its
    one room only."""


class RoomRefused(ClientError):
    """The server refused a rooms command (``ENTER``, ``EXIT``, ``ROOMSET``,
    ``INVITE``, or a ``SEND`` to a room): its code, reason and ``REF``;
    ``str()`` says what was refused and why."""

    def __init__(self, code: str, reason: str, ref: str, room: str | None) -> None:
        super().__init__(refused_text(ref, room, reason, code))
        self.code = code
        self.reason = reason
        self.ref = ref
        self.room = room


_REFUSED = {
    "ENTER": "cannot enter",
    "EXIT": "cannot leave",
    "ROOMSET": "cannot change",
    "INVITE": "cannot invite to",
    "SEND": "cannot send to",
}


def refused_text(ref: str, room: str | None, reason: str, code: str) -> str:
    """One readable line: ``cannot enter #dev: <the server's reason> (CODE)``."""
    action = _REFUSED.get(ref, f"{ref} refused")
    where = f" #{room}" if room else (" the room" if ref in _REFUSED else "")
    because = reason or "the server refused it"
    return f"{action}{where}: {because} ({code})"


class AccountRefused(ClientError):
    """The server refused a ``REGISTER`` or a ``PASSWORD`` (``ref``): its
    code (``UID_TAKEN``, ``BAD_INVITE``, ``WEAK_PASSWORD``,
    ``REGISTRATION_CLOSED``, ``AUTH_FAILED``, ...) and reason; ``str()`` is
    one line: ``cannot create the account: <the server's reason> (CODE)``."""

    def __init__(self, code: str, reason: str, ref: str) -> None:
        action = (
            "cannot create the account"
            if ref == "REGISTER"
            else "cannot change the password"
        )
        super().__init__(f"{action}: {reason or 'the server refused it'} ({code})")
        self.code = code
        self.reason = reason
        self.ref = ref
