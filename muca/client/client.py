"""The MUCA client: a protocol, its factory, and a small API for scripts and the GUI.

:class:`ChatClient` connects (giving up after a time limit), joins, sends and
leaves; everything the server says arrives as calls on a
:class:`ChatObserver`. It accepts both framings on input (so it works against
the original MUCA server too). Toward a server whose framing is not known
yet it writes as the original client does (ASCII JSON objects back to back,
no separator; the ``JOIN`` carries ``"V": 2`` all the same), and switches to
native framing (UTF-8, one object per line) once the server's first reply
ends with a newline. Nothing here knows Tk.

What it raises is in :mod:`muca.client.errors`, what it reports
(:class:`ChatObserver`, :class:`ReceivedMessage`) in
:mod:`muca.client.observer`, and the TCP or TLS endpoint it connects
through in :mod:`muca.client.endpoint`.

Rooms: the ``JOIN`` asks for the ``rooms`` capability. A server that has
them answers ``ROOMS`` after ``ACK``; :meth:`ChatClient.enter`,
:meth:`~ChatClient.exit`, :meth:`~ChatClient.set_room`,
:meth:`~ChatClient.invite` and ``send(..., room=)`` then work, and each
room's roster, topic and broadcasts reach the observer with their room
(see :mod:`muca.client.rooms`). :attr:`ChatClient.peers` stays the default
room's. Against a server without rooms (an original server, or a server
that says ``ROOMS_UNAVAILABLE``, as older cluster nodes did) everything is as
before rooms, and the
rooms commands raise :class:`RoomsUnavailable`.

Accounts (a server with ``--auth db``): :meth:`ChatClient.register` makes an
account for the client's user id on a connection that has not joined, and
:meth:`~ChatClient.change_password` changes a joined user's password; both
fail with :class:`AccountRefused` carrying the server's code and reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer, error
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure

from muca.client.endpoint import DEFAULT_TIMEOUT, client_endpoint
from muca.client.errors import (
    AccountRefused,
    ClientError,
    ConnectFailed,
    ConnectionClosed,
    MessageTooLong,
    NotConnected,
    RoomRefused,
    RoomsUnavailable,
    SearchRefused,
)
from muca.client.observer import ChatObserver, ReceivedMessage, SearchResult
from muca.client.rooms import RoomInfo, parse_rooms, room_name
from muca.client.roster import Roster, parse_known
from muca.client.sending import SentMessage, SentMessages, characters_that_fit
from muca.protocol import messages
from muca.protocol.messages import (
    Ack,
    HistoryEnd,
    JoinRefused,
    Message,
    Peer,
    PeerList,
    Presence,
    ProtocolError,
    SearchEnd,
    ServerError,
)
from muca.protocol.wire import (
    DEFAULT_MAX_FRAME,
    BadFrame,
    FrameDecoder,
    FrameTooLong,
    Framing,
    encode,
)

# A message the server took in one frame reaches us with more around it
# (TYPE, FROM, TO, TS) and, toward some peers, with escapes: accept frames
# this many times the server's limit.
RECEIVE_FACTOR = 4

#: The frames only a server with rooms sends.
ROOM_EVENTS = frozenset({"ROOMS", "ENTERED", "TOPIC"})
#: What moderation tells a client: each becomes one line (``notice``).
MODERATION_EVENTS = frozenset({"NOTICE", "KICKED", "DELETED", "REPORT"})
#: The refusals of rooms commands, by their ``REF``.
ROOM_REFS = frozenset({"ENTER", "EXIT", "ROOMSET", "INVITE"})
#: The answers to ``REGISTER`` and ``PASSWORD``, and their refusals' ``REF``s.
ACCOUNT_ANSWERS = frozenset({"REGISTERED", "PASSWORD"})
ACCOUNT_REFS = frozenset({"REGISTER", "PASSWORD"})
#: The longest wait, in seconds, for the answer to ``REGISTER`` or
#: ``PASSWORD`` (never shorter than the client's timeout): a server answers
#: a wrong invitation or old password later and later, up to 16 s by default.
ACCOUNT_WAIT = 20.0


class ChatClientProtocol(Protocol):
    """One connection to a MUCA server: frames in, commands to the client."""

    factory: ChatClientFactory

    def __init__(self, client: ChatClient, max_frame: int) -> None:
        self.client = client
        self._decoder = FrameDecoder(max_frame)
        # Original framing until the server shows it reads lines: a server
        # that splits by brace depth takes a stray "\n" for a command, and
        # an ASCII-only one dies on a UTF-8 byte.
        self.framing = Framing.ORIGINAL

    def connectionMade(self) -> None:
        self.client._connection_made(self)

    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except FrameTooLong as too_long:
            self.client._report_error(too_long.code, f"server sent a {too_long.reason}")
            self.client._close("we closed the connection after a frame over the limit")
            return
        if self.framing is Framing.ORIGINAL and self._decoder.newline_framed:
            self.framing = Framing.NATIVE
        for frame in frames:
            if isinstance(frame, BadFrame):
                self.client._report_error(frame.code, f"server sent {frame.reason}")
                continue
            try:
                command = messages.parse_server_command(frame)
            except ProtocolError as error:
                self.client._report_error(error.code, f"server sent {error.reason}")
                continue
            if command is not None:
                self.client._handle(command, frame)
            elif frame.get("CMD") == "KNOWN":
                self.client._known(parse_known(frame))
            elif frame.get("CMD") in ROOM_EVENTS:
                self.client._room_event(frame)
            elif frame.get("CMD") in MODERATION_EVENTS:
                self.client._moderation_event(frame)
            elif frame.get("CMD") in ACCOUNT_ANSWERS:
                self.client._account_answer(frame)

    def connectionLost(self, reason: Failure = None) -> None:
        self.client._connection_lost(self, reason)

    def send_object(self, obj: dict[str, Any]) -> None:
        """Write one object in this connection's framing."""
        self.transport.write(encode(obj, self.framing))

    def accept_frames(self, limit: int) -> None:
        """Take frames up to ``limit`` bytes from now on (never fewer than now)."""
        self._decoder.max_frame = max(self._decoder.max_frame, limit)

    def frame_size(self, obj: dict[str, Any]) -> int:
        """The size of ``obj`` as the server counts it (without a newline)."""
        return len(encode(obj, self.framing).rstrip(b"\n"))


class ChatClientFactory(ClientFactory):
    """Builds the protocol for one :class:`ChatClient` connection."""

    protocol = ChatClientProtocol

    def __init__(self, client: ChatClient, max_frame: int) -> None:
        self.client = client
        self.max_frame = max_frame

    def buildProtocol(self, addr: Any) -> ChatClientProtocol:
        proto = ChatClientProtocol(self.client, self.max_frame)
        proto.factory = self
        return proto


class ChatClient:
    """One user's session with a MUCA server.

    ``connect``, ``join`` and ``leave`` return Deferreds; ``send`` writes at
    once. :attr:`peers` is the current peer list, in join order. Events go to
    ``observer`` (a :class:`ChatObserver`). Every wait for the server is
    limited to ``timeout`` seconds.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        nickname: str,
        uid: str,
        observer: ChatObserver | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_frame: int = RECEIVE_FACTOR * DEFAULT_MAX_FRAME,
    ) -> None:
        self.reactor = reactor
        self.nickname = nickname
        self.uid = uid
        self.observer = observer if observer is not None else ChatObserver()
        self.timeout = timeout
        self.max_frame = max_frame
        #: The longest frame the server takes: its ACK's MAX_FRAME, or the default.
        self.server_max_frame = DEFAULT_MAX_FRAME
        #: Who is in the room, who is away, and their nicknames.
        self.roster = Roster(uid)
        self.joined = False
        self._protocol: ChatClientProtocol | None = None
        self._connecting: defer.Deferred[Any] | None = None
        self._join_waiter: defer.Deferred[None] | None = None
        self._leave_waiters: list[defer.Deferred[None]] = []
        # Why we closed the connection ourselves; None while we have not.
        self._closed_by_us: str | None = None
        self._where = "the server"
        #: The highest and lowest message ids seen (None before any).
        self.last_id: int | None = None
        self.oldest_id: int | None = None
        #: The server said older messages exist (``HISTORY MORE``, the last
        #: one it sent).
        self.more_history = False
        # Per room on a server with rooms (None: messages without a room,
        # our own private and group ones): the oldest id seen there, and
        # whether the server said older ones exist (a room's replay or
        # scroll-back; until then what the JOIN's replay said).
        self._oldest_in: dict[str | None, int] = {}
        self._more_in: dict[str | None, bool] = {}
        self._more_at_join = False
        # Set when the connection broke without our asking: the next JOIN
        # catches up with SINCE instead of a fresh replay.
        self._catch_up = False
        self._catching_up = False
        self._password_used = False
        self._first_list = True
        #: The messages sent that the server may still refuse.
        self.sent = SentMessages((uid, nickname))
        # REGISTER and PASSWORD sent and not answered yet, by their REF, in
        # the order sent (the server answers them in that order).
        self._account_waiters: list[tuple[str, defer.Deferred[None]]] = []
        # Searches asked for and not answered yet, in the order sent (the
        # server answers in that order): each one's waiter (None once it
        # timed out: its answer is still read, and dropped) and its finds.
        self._searches: list[_PendingSearch] = []
        self._reset_rooms()

    def _reset_rooms(self) -> None:
        #: The rooms we may see, the default room first (``ROOMS``); empty
        #: on a server without rooms.
        self.rooms: tuple[RoomInfo, ...] = ()
        #: True once the server showed it has rooms, False once it showed it
        #: has not, None before it said either (after ACK, before its
        #: ROOMS or first LIST).
        self.rooms_available: bool | None = None
        self._room_peers: dict[str, tuple[Peer, ...]] = {}
        # Rooms commands written before the server said whether it has rooms.
        self._held: list[dict[str, Any]] = []
        self._enter_waiters: list[tuple[str, defer.Deferred[str]]] = []
        # Scroll-backs in our own messages asked for and not ended yet:
        # their end has no ROOM, as the JOIN's replay's has not.
        self._own_asked = 0

    @property
    def default_room(self) -> str | None:
        """The server's default room (None on a server without rooms)."""
        return self.rooms[0].name if self.rooms else None

    @property
    def rooms_in(self) -> tuple[str, ...]:
        """The names of the rooms we are in, in ``ROOMS`` order."""
        return tuple(info.name for info in self.rooms if info.inside)

    def room_peers(self, room: str) -> tuple[Peer, ...]:
        """Who is in ``room`` (one we are in), in join order; nobody for a
        room we are not in."""
        if room == self.default_room and room in self.rooms_in:
            return self.roster.present
        return self._room_peers.get(room, ())

    @property
    def peers(self) -> tuple[Peer, ...]:
        """The users in the room, in join order."""
        return self.roster.present

    @property
    def away(self) -> tuple[Peer, ...]:
        """Known users who are away and can be written to (offline delivery),
        most recently seen first; none unless the server authenticates."""
        return self.roster.away

    @property
    def connected(self) -> bool:
        """True while a connection to the server is open."""
        return self._protocol is not None

    @property
    def framing(self) -> Framing | None:
        """How we write to the server now (None when not connected)."""
        return self._protocol.framing if self._protocol is not None else None

    # Connecting

    def connect(
        self, endpoint: IStreamClientEndpoint, where: str = "the server"
    ) -> defer.Deferred[None]:
        """Connect; fails with :class:`ConnectFailed` when the server cannot be
        reached within the time limit. ``where`` names the server in errors."""
        if self._protocol is not None or self._connecting is not None:
            return defer.fail(ClientError("already connected"))
        self._where = where
        attempt = endpoint.connect(ChatClientFactory(self, self.max_frame))
        self._connecting = attempt
        attempt.addTimeout(self.timeout, self.reactor)

        def connected(proto: ChatClientProtocol) -> None:
            self._connecting = None

        def failed(failure: Failure) -> None:
            self._connecting = None
            if failure.check(defer.TimeoutError, defer.CancelledError):
                raise ConnectFailed(
                    f"cannot reach {where}: no answer within {self.timeout:g} s"
                )
            raise ConnectFailed(f"cannot reach {where}: {_describe(failure)}")

        attempt.addCallbacks(connected, failed)
        return attempt

    def connect_tcp(
        self, host: str, port: int, tls: bool = False, ca_file: str | None = None
    ) -> defer.Deferred[None]:
        """Connect to ``host:port``, over TLS when ``tls`` (see
        :func:`client_endpoint`)."""
        try:
            endpoint = client_endpoint(
                self.reactor, host, port, tls, ca_file, self.timeout
            )
        except ClientError as problem:
            return defer.fail(problem)
        return self.connect(endpoint, f"{host}:{port}")

    # Joining, sending, leaving

    def join(self, password: str | None = None) -> defer.Deferred[None]:
        """Send ``JOIN``; fires on ``ACK OKAY``, fails with :class:`JoinRefused`
        (the server's code and reason) on ``ACK FAIL``, with
        :class:`ConnectFailed` when no answer comes in time."""
        proto = self._protocol
        if proto is None:
            return defer.fail(NotConnected("not connected"))
        if self.joined or self._join_waiter is not None:
            return defer.fail(ClientError("already joined"))
        waiter: defer.Deferred[None] = defer.Deferred()
        self._join_waiter = waiter

        def timed_out(failure: Failure) -> Failure:
            if failure.check(defer.TimeoutError):
                if self._join_waiter is waiter:
                    self._join_waiter = None
                self._close("we closed the connection: no answer to JOIN")
                raise ConnectFailed(
                    f"{self._where} did not answer JOIN within {self.timeout:g} s"
                )
            return failure

        waiter.addTimeout(self.timeout, self.reactor)
        waiter.addErrback(timed_out)
        since = self.last_id if self._catch_up else None
        self._catching_up = since is not None
        self._password_used = password is not None
        caps = (
            messages.PRESENCE_DELTA,
            messages.HISTORY,
            messages.KNOWN,
            messages.ROOMS,
            messages.SEARCH,
            messages.MODERATION,
        )
        proto.send_object(
            messages.join_payload(
                self.nickname, self.uid, password, caps=caps, since=since
            )
        )
        return waiter

    # Accounts

    def register(
        self, password: str, invitation: str | None = None
    ) -> defer.Deferred[None]:
        """Make an account for our user id with ``password`` (``REGISTER``,
        with the ``invitation`` code a server that registers by invitation
        wants), on a connection that has not joined; fires on
        ``REGISTERED``, after which :meth:`join` with that password logs in.
        Fails with :class:`AccountRefused` (``UID_TAKEN``, ``BAD_INVITE``,
        ``WEAK_PASSWORD`` with what is needed, ``REGISTRATION_CLOSED``),
        :class:`NotConnected` when not connected, :class:`ClientError` when
        joined."""
        if self._protocol is None:
            return defer.fail(NotConnected("not connected"))
        if self.joined or self._join_waiter is not None:
            return defer.fail(
                ClientError("already joined: an account is made before joining")
            )
        payload: dict[str, Any] = {"CMD": "REGISTER", "UID": self.uid, "PASS": password}
        if invitation is not None:
            payload["INVITE"] = invitation
        return self._account_request(payload)

    def change_password(self, old: str, new: str) -> defer.Deferred[None]:
        """Change our password from ``old`` to ``new`` (``PASSWORD``, joined);
        fires when the server says it changed. Fails with
        :class:`AccountRefused` (``AUTH_FAILED``: ``old`` is wrong;
        ``WEAK_PASSWORD``; ``BAD_COMMAND`` on a server without accounts),
        :class:`NotConnected` before joining."""
        if self._protocol is None or not self.joined:
            return defer.fail(
                NotConnected("join the chat room before changing the password")
            )
        return self._account_request({"CMD": "PASSWORD", "OLD": old, "NEW": new})

    def _account_request(self, payload: dict[str, Any]) -> defer.Deferred[None]:
        proto = self._protocol
        assert proto is not None
        ref = payload["CMD"]
        waiter: defer.Deferred[None] = defer.Deferred()
        entry = (ref, waiter)
        self._account_waiters.append(entry)
        wait = max(self.timeout, ACCOUNT_WAIT)

        def timed_out(failure: Failure) -> Failure:
            if failure.check(defer.TimeoutError):
                if entry in self._account_waiters:
                    self._account_waiters.remove(entry)
                raise ConnectFailed(
                    f"{self._where} did not answer {ref} within {wait:g} s"
                )
            return failure

        waiter.addTimeout(wait, self.reactor)
        waiter.addErrback(timed_out)
        proto.send_object(payload)
        return waiter

    def _account_waiter(self, ref: str) -> defer.Deferred[None] | None:
        for index, (waiting, waiter) in enumerate(self._account_waiters):
            if waiting == ref:
                del self._account_waiters[index]
                return waiter
        return None

    def _account_answer(self, frame: dict[str, Any]) -> None:
        ref = "REGISTER" if frame["CMD"] == "REGISTERED" else "PASSWORD"
        if ref == "PASSWORD" and frame.get("CHANGED") is not True:
            return
        waiter = self._account_waiter(ref)
        if waiter is not None:
            waiter.callback(None)

    def load_older(
        self,
        limit: int = messages.DEFAULT_HISTORY_LIMIT,
        room: str | None = None,
        own: bool = False,
    ) -> bool:
        """Ask for up to ``limit`` messages older than the oldest seen; False
        when there is nothing to ask for (not joined, or none older).

        On a server with rooms this scrolls back in one room (``HISTORY``
        with ``ROOM``): ``room``, by default the default room; with ``own``,
        in our own private and group messages instead. On a server without
        rooms both are ignored: its one room and our own messages together,
        as before rooms."""
        proto = self._protocol
        if proto is None or self.oldest_id is None or not self.has_older(room, own):
            return False
        if not self.rooms_available:
            proto.send_object(messages.history_request_payload(self.oldest_id, limit))
            return True
        key = self._history_key(room, own)
        # A room none of whose messages came yet: older than all that did.
        before = self._oldest_in.get(key, self.oldest_id)
        if own:
            self._own_asked += 1
        proto.send_object(messages.history_request_payload(before, limit, key))
        return True

    def has_older(self, room: str | None = None, own: bool = False) -> bool:
        """Whether the server said older messages exist where
        :meth:`load_older` with the same arguments would ask."""
        if not self.joined:
            return False
        if not self.rooms_available:
            return self.more_history
        return self._more_in.get(self._history_key(room, own), self._more_at_join)

    def _history_key(self, room: str | None, own: bool) -> str | None:
        """Where a scroll-back asks: a room's name, None for our own."""
        if own:
            return None
        name = room if room is not None else self.default_room
        return room_name(name or "", "HISTORY")

    def search(
        self,
        query: str,
        room: str | None = None,
        sender: str | None = None,
        before: int | None = None,
        limit: int = messages.DEFAULT_SEARCH_LIMIT,
    ) -> defer.Deferred[SearchResult]:
        """Search what we may read back for ``query`` (words, ``plan*``,
        ``"phrases"``): in ``room`` only when given, sent by ``sender`` when
        given, older than the id ``before`` when given; at most ``limit``
        (1 to 50) messages. Fires with a :class:`SearchResult` (newest
        first); fails with :class:`SearchRefused` (``BAD_QUERY`` and the
        server's reason, ...), :class:`NotConnected` before a join,
        :class:`ConnectionClosed`, or :class:`ClientError` when no answer
        comes within the timeout. The finds do not go to the observer."""
        proto = self._protocol
        if proto is None or not self.joined:
            return defer.fail(NotConnected("join the chat room before searching"))
        if room is not None:
            room = room_name(room, "SEARCH")
        pending = _PendingSearch(defer.Deferred())
        self._searches.append(pending)
        proto.send_object(
            messages.search_request_payload(query, room, sender, before, limit)
        )
        waiter = pending.waiter
        assert waiter is not None

        def timed_out(failure: Failure) -> Failure:
            if failure.check(defer.TimeoutError):
                pending.waiter = None
                raise ClientError(
                    f"{self._where} did not answer SEARCH within {self.timeout:g} s"
                )
            return failure

        waiter.addTimeout(self.timeout, self.reactor)
        waiter.addErrback(timed_out)
        return waiter

    def send(
        self, recipients: Sequence[str], text: str, room: str | None = None
    ) -> SentMessage:
        """Send a message to these user ids; no ids is a broadcast, to
        ``room`` when given (a room we are in), else to the default room.

        Returns the message as sent: should the server refuse it, the
        observer's ``send_refused`` gets it back (see
        :mod:`muca.client.sending`). Raises :class:`NotConnected` before a
        successful join, and :class:`MessageTooLong` (sending nothing) when
        the frame would be longer than the server takes. A ``room`` on a
        server without rooms raises :class:`RoomsUnavailable`; one that is
        no room's name, :class:`RoomRefused` (``BAD_ROOM``). A ``room`` with
        recipients is ignored: private and group messages have no room.
        """
        proto = self._protocol
        if proto is None or not self.joined:
            raise NotConnected("join the chat room before sending")
        payload = messages.send_payload(text, list(recipients), self.uid)
        if room is not None and not recipients:
            room = room_name(room, "SEND")
            self._check_rooms("SEND")
            payload["ROOM"] = room
        else:
            room = None
        size = proto.frame_size(payload)
        if size > self.server_max_frame:
            room = self.server_max_frame - proto.frame_size({**payload, "MSG": ""})
            ascii_only = proto.framing is Framing.ORIGINAL
            most = characters_that_fit(text, room, ascii_only)
            raise MessageTooLong(len(text), most, size, self.server_max_frame)
        self._rooms_command(payload)
        return self.sent.sent(
            tuple(recipients), text, self.reactor.seconds(), room=room
        )

    # Rooms

    def enter(self, room: str) -> defer.Deferred[str]:
        """Enter ``room`` (``dev`` or ``#dev``), made first when the server
        lets us; fires with its topic on ``ENTERED``, fails with
        :class:`RoomRefused` (the observer's ``room_refused`` hears of it
        too). Raises :class:`RoomsUnavailable` on a server without rooms,
        :class:`RoomRefused` ``BAD_ROOM`` (sending nothing) for a bad name."""
        name = room_name(room, "ENTER")
        self._check_rooms("ENTER")
        waiter: defer.Deferred[str] = defer.Deferred()
        self._enter_waiters.append((name, waiter))
        self._rooms_command({"CMD": "ENTER", "ROOM": name})
        return waiter

    def exit(self, room: str) -> None:
        """Leave ``room`` (the default room too); ``room_exited`` follows,
        or ``room_refused``. Raises as :meth:`enter` does."""
        name = room_name(room, "EXIT")
        self._check_rooms("EXIT")
        self._rooms_command({"CMD": "EXIT", "ROOM": name})

    def set_room(
        self,
        room: str,
        topic: str | None = None,
        private: bool | None = None,
        slow: int | None = None,
    ) -> None:
        """Set a room we own (``ROOMSET``): its topic, whether it is private
        (invite-only and hidden), its slow mode in seconds; any of them,
        at least one. Refusals go to ``room_refused``."""
        name = room_name(room, "ROOMSET")
        if topic is None and private is None and slow is None:
            raise ClientError("set_room needs a topic, private or slow")
        self._check_rooms("ROOMSET")
        payload: dict[str, Any] = {"CMD": "ROOMSET", "ROOM": name}
        if topic is not None:
            payload["TOPIC"] = topic
        if private is not None:
            payload["PRIVATE"] = private
        if slow is not None:
            payload["SLOW"] = slow
        self._rooms_command(payload)

    def invite(self, room: str, uid: str) -> None:
        """Let user id ``uid`` into ``room`` (a private room we are in)."""
        name = room_name(room, "INVITE")
        self._check_rooms("INVITE")
        self._rooms_command({"CMD": "INVITE", "ROOM": name, "UID": uid})

    # Moderation (capability "moderation")

    def moderate(
        self,
        action: str,
        uid: str,
        room: str | None = None,
        seconds: int | None = None,
        reason: str = "",
    ) -> None:
        """``KICK``, ``BAN``, ``UNBAN``, ``MUTE``, ``UNMUTE`` or
        ``MODERATOR`` of ``uid`` in ``room`` (None: server-wide), for
        ``seconds`` (None: for ever); the answer is a ``notice``, a refusal
        a ``server_error``."""
        payload: dict[str, Any] = {"CMD": action, "UID": uid}
        if room is not None:
            payload["ROOM"] = room_name(room, action)
        if action in ("BAN", "MUTE"):
            payload["FOR"] = seconds
        if reason:
            payload["REASON"] = reason
        self._moderation_command(payload)

    def delete(self, message_id: int, reason: str = "") -> None:
        """``DELETE`` a message (ours, or as a moderator of its room)."""
        self._moderation_command({"CMD": "DELETE", "ID": message_id, "REASON": reason})

    def report(self, message_id: int, reason: str = "") -> None:
        """``REPORT`` a message to its room's moderators."""
        self._moderation_command({"CMD": "REPORT", "ID": message_id, "REASON": reason})

    def _moderation_command(self, payload: dict[str, Any]) -> None:
        if self._protocol is None or not self.joined:
            raise NotConnected("join the chat before moderating")
        self._protocol.send_object(payload)

    def _moderation_event(self, frame: dict[str, Any]) -> None:
        """``NOTICE``, ``KICKED``, ``DELETED``, ``REPORT``: one line each."""
        cmd = frame["CMD"]
        reason = frame.get("REASON")
        why = f": {reason}" if isinstance(reason, str) and reason else ""
        if cmd == "NOTICE":
            text = f"#{frame.get('ROOM')}: {frame.get('TEXT')}"
        elif cmd == "KICKED":
            text = f"{frame.get('BY')} put you off the server{why}"
        elif cmd == "DELETED":
            text = f"message {frame.get('ID')} was deleted"
        else:
            where = f" in #{frame['ROOM']}" if frame.get("ROOM") else ""
            text = (
                f"{frame.get('BY')} reported message {frame.get('ID')} by"
                f" {frame.get('AUTHOR')}{where}{why}"
            )
        self.observer.notice(text)

    def _check_rooms(self, ref: str) -> None:
        if self._protocol is None or not self.joined:
            raise NotConnected("join the chat before using rooms")
        if self.rooms_available is False:
            raise RoomsUnavailable(
                "this server has no rooms: everyone is in its one room"
            )

    def _rooms_command(self, payload: dict[str, Any]) -> None:
        """Write ``payload`` now, or, before the server said whether it has
        rooms and when it is a rooms command, once it has."""
        proto = self._protocol
        if proto is None:
            return
        if self.rooms_available is None and (
            payload["CMD"] != "SEND" or "ROOM" in payload
        ):
            self._held.append(payload)
        else:
            proto.send_object(payload)

    def leave(self) -> defer.Deferred[None]:
        """Close the connection; fires once it is closed (at once if none)."""
        if self._connecting is not None:
            self._connecting.cancel()
        if self.joined:
            # Leaving the room: the next JOIN gets a fresh replay.
            self._catch_up = False
        if self._protocol is None:
            return defer.succeed(None)
        done: defer.Deferred[None] = defer.Deferred()
        self._leave_waiters.append(done)
        self._close("we closed the connection")
        return done

    def nickname_of(self, uid: str) -> str:
        """The nickname of a user id in the room, else the last one it had
        (it left, or the server named it in ``KNOWN``), else the one it has
        in another room we are in, else the id itself."""
        nickname = self.roster.nickname_of(uid)
        if nickname != uid:
            return nickname
        for peers in self._room_peers.values():
            for peer in peers:
                if peer.uid == uid:
                    return peer.nickname
        return nickname

    # Called by the protocol

    def _connection_made(self, proto: ChatClientProtocol) -> None:
        self._protocol = proto
        self._closed_by_us = None
        self._first_list = True
        self.server_max_frame = DEFAULT_MAX_FRAME
        if hasattr(proto.transport, "setTcpNoDelay"):
            proto.transport.setTcpNoDelay(True)

    def _handle(self, command: messages.ServerCommand, frame: dict[str, Any]) -> None:
        if isinstance(command, Message):
            ident = command.ident
            if ident is not None:
                if self.last_id is None or ident > self.last_id:
                    self.last_id = ident
                if self.oldest_id is None or ident < self.oldest_id:
                    self.oldest_id = ident
                key = _room_of(frame) if command.kind == messages.ALL else None
                oldest = self._oldest_in.get(key)
                if oldest is None or ident < oldest:
                    self._oldest_in[key] = ident
            received = ReceivedMessage(
                kind=command.kind,
                sender_uid=command.sender,
                sender_nickname=self._sender_nickname(command, frame),
                text=command.text,
                to=command.to,
                ident=ident,
                timestamp_ms=command.timestamp_ms,
                history=command.history,
                room=_room_of(frame) if command.kind == messages.ALL else None,
            )
            if frame.get("SEARCH") is True and self._searches:
                self._searches[0].found.append(received)
            else:
                self.observer.message_received(received)
        elif isinstance(command, SearchEnd):
            if self._searches:
                done = self._searches.pop(0)
                if done.waiter is not None:
                    done.waiter.callback(SearchResult(tuple(done.found), command.more))
        elif isinstance(command, HistoryEnd):
            self._history_end(command)
        elif isinstance(command, PeerList):
            self._roster_of(_room_of(frame), command.peers)
        elif isinstance(command, Presence):
            room = _room_of(frame)
            left = set(command.left)
            before = self.peers if self._is_default(room) else self.room_peers(room)
            kept = [p for p in before if p.uid not in left]
            known = {p.uid for p in kept}
            kept.extend(p for p in command.joined if p.uid not in known)
            self._roster_of(room, tuple(kept))
        elif isinstance(command, Ack):
            self._acked(command)
        elif isinstance(command, ServerError):
            self._server_error(command)

    def _history_end(self, end: HistoryEnd) -> None:
        if end.room is not None:
            # A room's replay or scroll-back.
            self._more_in[end.room] = self.more_history = end.more
        elif self._own_asked:
            self._own_asked -= 1
            self._more_in[None] = self.more_history = end.more
        elif self._catching_up:
            # The end of a SINCE catch-up: whether older messages exist
            # was known before it.
            self._catching_up = False
            self.more_history = self.more_history or end.more
            self._more_at_join = self.more_history
        else:
            # The JOIN's replay, of every room we are in and our own.
            self.more_history = self._more_at_join = end.more
            self._more_in.clear()
        self.observer.history_end(self.more_history)

    def _sender_nickname(self, message: Message, frame: dict[str, Any]) -> str:
        """A replayed message's own ``UN`` (the nickname it was sent with),
        else the sender's nickname as we know it."""
        nickname = frame.get("UN")
        if message.history and isinstance(nickname, str) and nickname:
            return nickname
        return self.nickname_of(message.sender)

    def _server_error(self, error: ServerError) -> None:
        if error.ref in ACCOUNT_REFS:
            waiter = self._account_waiter(error.ref)
            if waiter is not None:
                waiter.errback(AccountRefused(error.code, error.reason, error.ref))
                return
        if error.ref == "SEARCH" and self._searches:
            refused = self._searches.pop(0).waiter
            if refused is not None:
                refused.errback(SearchRefused(error.code, error.reason))
            return
        if error.code == messages.ROOMS_UNAVAILABLE and error.ref == "JOIN":
            self._no_rooms()
            self.observer.rooms_unavailable(error.reason)
            return
        if error.ref in ROOM_REFS:
            room = None
            if error.ref == "ENTER" and self._enter_waiters:
                room, waiter = self._enter_waiters.pop(0)
            else:
                waiter = None
            refusal = RoomRefused(error.code, error.reason, error.ref, room)
            self.observer.room_refused(refusal)
            if waiter is not None:
                waiter.errback(refusal)
            return
        if error.ref == "SEND":
            refusal = self.sent.refused(
                error.code, error.reason, self.reactor.seconds()
            )
            if refusal is not None:
                self.observer.send_refused(refusal)
                return
        self.observer.server_error(error.code, error.reason)

    def _known(self, known: tuple[Peer, ...]) -> None:
        # An empty KNOWN (a server without --auth) changes nobody's list.
        if known:
            self.roster.set_known(known)
            self.observer.peers_changed(self.peers)

    def _acked(self, ack: Ack) -> None:
        waiter, self._join_waiter = self._join_waiter, None
        if ack.ok:
            if ack.max_frame is not None:
                self.server_max_frame = ack.max_frame
                if self._protocol is not None:
                    self._protocol.accept_frames(RECEIVE_FACTOR * ack.max_frame)
            self.joined = True
            if self._password_used:
                # Only a server that authenticates asks for a password.
                self.roster.authenticating = True
            self.observer.joined()
            if waiter is not None:
                waiter.callback(None)
            return
        code = ack.code or "FAIL"
        reason = ack.reason or "the server refused to let you join"
        self.observer.refused(code, reason)
        if waiter is not None:
            waiter.errback(JoinRefused(code, reason))

    # Rooms, as the server reports them

    def _is_default(self, room: str | None) -> bool:
        return room is None or room == self.default_room

    def _roster_of(self, room: str | None, peers: tuple[Peer, ...]) -> None:
        if self.rooms_available is None:
            # A first LIST with no ROOMS before it: a server without rooms.
            self._no_rooms()
        if self._is_default(room):
            self._set_peers(peers)
        else:
            self._room_peers[room] = peers
        if room is not None:
            self.observer.room_peers_changed(room, peers)

    def _no_rooms(self) -> None:
        """The server has no rooms: what was held for them is refused."""
        self.rooms_available = False
        held, self._held = self._held, []
        waiters, self._enter_waiters = self._enter_waiters, []
        reason = "this server has no rooms: everyone is in its one room"
        for payload in held:
            if payload["CMD"] == "SEND":
                refusal = self.sent.refused(
                    messages.ROOMS_UNAVAILABLE, reason, self.reactor.seconds()
                )
                if refusal is not None:
                    self.observer.send_refused(refusal)
            else:
                code, ref = messages.ROOMS_UNAVAILABLE, payload["CMD"]
                refusal = RoomRefused(code, reason, ref, payload.get("ROOM"))
                self.observer.room_refused(refusal)
        for _, waiter in waiters:
            waiter.errback(RoomsUnavailable(reason))

    def _room_event(self, frame: dict[str, Any]) -> None:
        cmd = frame["CMD"]
        if cmd == "ROOMS":
            self._rooms_listed(parse_rooms(frame))
            return
        room, topic = frame.get("ROOM"), frame.get("TOPIC")
        if not isinstance(room, str):
            return
        topic = topic if isinstance(topic, str) else ""
        if cmd == "ENTERED":
            self.observer.room_entered(room, topic)
            for index, (name, waiter) in enumerate(self._enter_waiters):
                if name == room:
                    del self._enter_waiters[index]
                    waiter.callback(topic)
                    break
        elif cmd == "TOPIC":
            by = frame.get("BY")
            self.rooms = tuple(
                RoomInfo(r.name, topic, r.count, r.inside) if r.name == room else r
                for r in self.rooms
            )
            self.observer.topic_changed(room, topic, by if isinstance(by, str) else "")

    def _rooms_listed(self, rooms: tuple[RoomInfo, ...]) -> None:
        first = self.rooms_available is None
        before = set(self.rooms_in)
        self.rooms = rooms
        now = set(self.rooms_in)
        if first:
            self.rooms_available = True
            held, self._held = self._held, []
            if self._protocol is not None:
                for payload in held:
                    self._protocol.send_object(payload)
        self.observer.rooms_changed(rooms)
        for room in sorted(before - now):
            if self._is_default(room):
                self._set_peers(())
            else:
                self._room_peers.pop(room, None)
            self.observer.room_peers_changed(room, ())
            self.observer.room_exited(room)

    def _set_peers(self, peers: tuple[Peer, ...]) -> None:
        joined, left = self.roster.set_present(peers)
        first, self._first_list = self._first_list, False
        self.observer.peers_changed(peers)
        self.observer.presence_changed(joined, left, first)

    def _report_error(self, code: str, reason: str) -> None:
        self.observer.server_error(code, reason)

    def _close(self, why: str) -> None:
        """Close the connection ourselves; ``why`` is what the loss will say."""
        if self._protocol is not None:
            if self._closed_by_us is None:
                self._closed_by_us = why
            self._protocol.transport.loseConnection()

    def _connection_lost(self, proto: ChatClientProtocol, reason: Failure) -> None:
        if proto is not self._protocol:
            return
        text = self._closed_by_us or _describe(reason)
        requested = self._closed_by_us is not None
        if not requested:
            # A broken connection is caught up on at the next JOIN.
            self._catch_up = self.last_id is not None
        self._protocol = None
        self._closed_by_us = None
        self.joined = False
        had_peers = bool(self.peers)
        self.roster.clear()
        self.sent.clear()
        waiter, self._join_waiter = self._join_waiter, None
        had_rooms = bool(self.rooms)
        enter_waiters = self._enter_waiters
        account_waiters, self._account_waiters = self._account_waiters, []
        self._reset_rooms()
        if had_peers:
            self.observer.peers_changed(())
        if had_rooms:
            self.observer.rooms_changed(())
        # The observer hears of the loss before a pending JOIN fails, so that
        # whoever waits on that JOIN can tell the loss is its own to report.
        self.observer.connection_lost(text, requested)
        if waiter is not None:
            waiter.errback(
                ConnectionClosed(f"connection closed before JOIN was answered: {text}")
            )
        for _, entering in enter_waiters:
            entering.errback(ConnectionClosed(f"connection closed: {text}"))
        for ref, asking in account_waiters:
            asking.errback(
                ConnectionClosed(f"connection closed before {ref} was answered: {text}")
            )
        searches, self._searches = self._searches, []
        for pending in searches:
            if pending.waiter is not None:
                pending.waiter.errback(ConnectionClosed(f"connection closed: {text}"))
        waiters, self._leave_waiters = self._leave_waiters, []
        for done in waiters:
            done.callback(None)


@dataclass(eq=False)
class _PendingSearch:
    """A ``SEARCH`` sent and not answered yet."""

    waiter: defer.Deferred[SearchResult] | None
    found: list[ReceivedMessage] = field(default_factory=list)


def _room_of(frame: dict[str, Any]) -> str | None:
    """The ``ROOM`` of a frame from a server with rooms, else None."""
    room = frame.get("ROOM")
    return room if isinstance(room, str) and room else None


def _describe(failure: Failure | None) -> str:
    """A short readable reason from a failure."""
    if failure is None or failure.check(error.ConnectionDone):
        return "the server closed the connection"
    if failure.check(error.ConnectionLost):
        return "the network broke: the connection was lost"
    if failure.check(error.ConnectionRefusedError):
        return "connection refused"
    if failure.check(SSL.Error):
        # pyOpenSSL gives a list of (library, function, reason); the last
        # reason is the one a person can act on.
        details = failure.value.args[0] if failure.value.args else []
        reasons = [d[-1] for d in details if isinstance(d, tuple) and d]
        return f"TLS failed: {reasons[-1] if reasons else failure.value}"
    text = str(failure.value).strip().rstrip(".")
    return text or type(failure.value).__name__
