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

    def __init__(self, length: int, most: int) -> None:
        super().__init__(f"message too long ({length:,} characters, at most {most:,})")
        self.length = length
        self.most = most


class CertificateRefused(ClientError):
    """The server's TLS certificate does not name the server we asked for."""
