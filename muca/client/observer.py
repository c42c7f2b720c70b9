"""What a :class:`~muca.client.client.ChatClient` tells its user: the
:class:`ChatObserver` interface and the :class:`ReceivedMessage` it hands on."""

from __future__ import annotations

from dataclasses import dataclass

from muca.client.errors import RoomRefused
from muca.client.rooms import RoomInfo
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
    #: The room of a broadcast from a server with rooms (None: a private or
    #: group message, or a server without rooms).
    room: str | None = None


@dataclass(frozen=True, slots=True)
class SearchResult:
    """What a search found: the matching messages, newest first; ``more``:
    older matches exist (search again with ``before`` the oldest's id)."""

    messages: tuple[ReceivedMessage, ...]
    more: bool


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

    # Rooms (a server with the ``rooms`` capability; none of these is called
    # by a server without rooms, where the client behaves as before them).

    def rooms_changed(self, rooms: tuple[RoomInfo, ...]) -> None:
        """``ROOMS``: every room we may see, the default room first (see
        ``ChatClient.rooms``); empty when the connection ended."""

    def room_entered(self, room: str, topic: str) -> None:
        """``ENTERED``: we are in ``room`` now; its roster follows."""

    def room_exited(self, room: str) -> None:
        """We are no longer in ``room`` (we left it)."""

    def room_peers_changed(self, room: str, peers: tuple[Peer, ...]) -> None:
        """The roster of a room we are in changed (the default room's is
        also reported by ``peers_changed``)."""

    def topic_changed(self, room: str, topic: str, by: str) -> None:
        """``TOPIC``: ``room``'s topic is now ``topic``, set by user id ``by``."""

    def room_refused(self, refusal: RoomRefused) -> None:
        """The server refused ``ENTER``, ``EXIT``, ``ROOMSET`` or ``INVITE``
        (``str(refusal)`` is a readable line); a refused ``SEND`` to a room
        goes to ``send_refused``."""

    def notice(self, text: str) -> None:
        """A moderation line: a room's ``NOTICE``, a kick, a deletion, a
        report (for a moderator)."""

    def rooms_unavailable(self, reason: str) -> None:
        """The server joined us without rooms (``ROOMS_UNAVAILABLE``, as
        older cluster nodes did); its one room is all there is."""
