"""What a :class:`~muca.client.client.ChatClient` tells its user: the
:class:`ChatObserver` interface and the :class:`ReceivedMessage` it hands on."""

from __future__ import annotations

from dataclasses import dataclass

from muca.client.sending import Refusal
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
        """The peer list changed (full ``LIST`` or ``PRESENCE`` delta), or
        the users away did (``KNOWN``: see ``ChatClient.away``)."""

    def presence_changed(
        self, joined: tuple[Peer, ...], left: tuple[Peer, ...], first: bool
    ) -> None:
        """Who joined and who left with the last peer list; ``first``: the
        connection's first list (everyone in it is ``joined``)."""

    def message_received(self, message: ReceivedMessage) -> None:
        """A chat message arrived."""

    def server_error(self, code: str, reason: str) -> None:
        """The server sent ``ERROR`` (or something this client cannot read)
        that is no refusal of a message we sent."""

    def send_refused(self, refusal: Refusal) -> None:
        """The server refused a message we sent (see
        :mod:`muca.client.sending`): not delivered at all, or, when
        ``refusal.partial``, not to ``refusal.message.undelivered``."""

    def history_end(self, more: bool) -> None:
        """A replay or scroll-back is complete; ``more``: older messages exist."""

    def connection_lost(self, reason: str, requested: bool) -> None:
        """The connection ended; ``requested`` when we asked for it (leave)."""
