"""What a :class:`~muca.client.client.ChatClient` tells its user: the
:class:`ChatObserver` interface and the :class:`ReceivedMessage` it hands on."""

from __future__ import annotations

from dataclasses import dataclass

from muca.protocol.messages import Peer


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A chat message as the observer sees it: ``kind`` is ALL, GROUP or PRIVATE."""

    kind: str
    sender_uid: str
    sender_nickname: str
    text: str
    to: tuple[str, ...] = ()
    #: The server's message id and receive time (ms since the epoch), if sent.
    ident: int | None = None
    timestamp_ms: int | None = None
    #: True for a message replayed from the history (sent before we joined).
    history: bool = False


class ChatObserver:
    """What a :class:`ChatClient` reports; subclass and override what you need."""

    def joined(self) -> None:
        """The server accepted our ``JOIN``."""

    def refused(self, code: str, reason: str) -> None:
        """The server refused our ``JOIN`` with ``ACK FAIL``."""

    def peers_changed(self, peers: tuple[Peer, ...]) -> None:
        """The peer list changed (full ``LIST`` or ``PRESENCE`` delta)."""

    def message_received(self, message: ReceivedMessage) -> None:
        """A chat message arrived."""

    def server_error(self, code: str, reason: str) -> None:
        """The server sent ``ERROR`` (or something this client cannot read)."""

    def history_end(self, more: bool) -> None:
        """A replay or scroll-back is complete; ``more``: older messages exist."""

    def connection_lost(self, reason: str, requested: bool) -> None:
        """The connection ended; ``requested`` when we asked for it (leave)."""
