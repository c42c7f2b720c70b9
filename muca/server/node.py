"""This server's node: the ``Factory`` holding the room and its peers.

How a message reaches other users: a connection hands a ``SEND`` to
:meth:`ChatFactory.accept`, which routes it through the room
(``muca.server.room``) and publishes a draft on the bus
(``muca.server.bus``); the bus gives it its id and calls back
:meth:`ChatFactory.deliver` on every node, which queues the encoded ``MSG``
for its own recipients (``muca.server.output``). Joins and leaves take the
bus too, and become coalesced roster updates here. Also: connection caps
and shutdown. One client connection is a
``muca.server.connection.ChatConnection`` (``ChatProtocol`` on TCP); the
history a client reads back (the replay at ``JOIN``, ``HISTORY BEFORE``) is
``muca.server.replay.Replays``, which the factory owns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from functools import cached_property
from typing import Protocol

from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.protocol.messages import (
    ALL,
    ALREADY_IN_ROOM,
    BANNED,
    CLUSTER_UNAVAILABLE,
    HISTORY,
    INVITE_ONLY,
    KNOWN,
    MODERATION,
    MODERATION_UNAVAILABLE,
    MUTED,
    NO_SUCH_MESSAGE,
    NO_SUCH_ROOM,
    NOT_ALLOWED,
    NOT_IN_ROOM,
    SLOW_MODE,
    STORE_UNAVAILABLE,
    UNKNOWN_RECIPIENT,
    ChatMessage,
    Delete,
    Enter,
    Exit,
    History,
    Invite,
    Join,
    JoinRefused,
    Moderate,
    ProtocolError,
    Report,
    RoomSet,
    Search,
    Send,
    deleted_payload,
    entered_payload,
    kicked_payload,
    known_payload,
    notice_payload,
    topic_payload,
)
from muca.protocol.wire import native_json
from muca.server import search
from muca.server.bus import Bus, ClusterUnavailable
from muca.server.connection import ChatConnection, ChatProtocol
from muca.server.context import NodeContext
from muca.server.known import KnownUsers
from muca.server.limits import ConnectionCounter, OutboundTotal
from muca.server.logins import LoginThrottle
from muca.server.moderation import SERVER, Moderation, duration_text
from muca.server.output import EncodedPayload, Payload
from muca.server.replay import Replays
from muca.server.room import Member, Room
from muca.server.rooms import ChatRoom, by_capability
from muca.server.wrong_port import BrowserClient
from muca.session.realm import Entrance, session_portal
from muca.store.base import BAN, MUTE, Sanction, StoreError

log = Logger()


class SharedRooms(Protocol):
    """Rooms decided cluster-wide (``muca.cluster.rooms``): the node checks
    a command on its replica, then hands it over; what is done comes back
    through :meth:`ChatFactory.room_entered` and
    :meth:`ChatFactory.room_changed`, refusals as an ``ERROR``."""

    def enter(self, member: Member, name: str, create: bool) -> None:
        """Enter the room ``name`` (made first if ``create``)."""

    def exit(self, member: Member, room: ChatRoom) -> None:
        """``member`` left ``room`` here: cluster-wide too."""

    def set_room(self, member: Member, request: RoomSet) -> None:
        """``ROOMSET`` by ``member``."""

    def invite(self, member: Member, request: Invite) -> None:
        """``INVITE`` by ``member``."""


class ChatFactory(ServerFactory):
    """The server's shared state: the room, the limits, roster coalescing.

    A burst of joins and leaves becomes one roster update: the first change
    after a quiet spell goes out at the end of the reactor turn, later ones
    at most once per ``list_interval`` seconds, or per ``list_interval``
    times members / ``list_interval_members`` in a larger room.
    """

    protocol = ChatProtocol
    #: Where the web listener serves the browser client, once it listens
    #: (set by ``muca.service.tap``); named to a browser on the chat port.
    browser_client: BrowserClient | None = None
    #: A cluster's rooms (set by its bus); None: rooms are this node's.
    shared_rooms: SharedRooms | None = None

    def __init__(self, context: NodeContext) -> None:
        """``context``: the clock, the configuration, the (opened) store,
        the bus and the counters this node works with."""
        self.context = context
        self.clock = context.clock
        config = self.config = context.config
        self.portal = context.portal
        #: What waits for all connections together (--max-outbound-total).
        self.outbound = OutboundTotal(config.max_outbound_total)
        #: Failed logins slowed down (None without --auth or when turned off).
        self.logins: LoginThrottle | None = None
        if self.portal is not None and config.login_delay:
            self.logins = LoginThrottle(
                self.clock,
                config.login_delay,
                max(config.login_delay, config.login_delay_max),
            )
        #: User ids that have joined before (offline delivery, --auth only):
        #: the room keeps them from being taken as nicknames.
        self.known = KnownUsers()
        self.room = Room(
            config.capacity, self.known, config.default_room, config.create_rooms
        )
        #: Newcomers with the known capability whose first LIST is not out.
        self._known_pending: set[Member] = set()
        self.counter = ConnectionCounter(
            config.max_connections, config.max_per_address, config.exempt_loopback
        )
        #: Every open connection, joined or not.
        self.connections: set[ChatConnection] = set()
        self.stopping = False
        self._roster_call: DelayedCall | None = None
        self._last_roster = float("-inf")
        # The members' ROOMS refreshed at this time at the earliest (see
        # _rooms_interval), by this call when nothing else comes first.
        self._rooms_due = float("-inf")
        self._rooms_call: DelayedCall | None = None
        #: Fan-out waiting for the end of this reactor turn.
        self.outbox = context.outbox
        #: Totals for /metrics.
        self.counters = context.counters
        self.store = context.store
        #: The accounts (--auth db), slowed by the same throttle as logins.
        self.accounts = context.accounts
        if self.accounts is not None:
            self.accounts.clock = self.clock
            self.accounts.throttle = self.logins
        #: The id of the last message the bus delivered here.
        self.last_delivered = 0
        #: History replays at JOIN and HISTORY BEFORE (muca.server.replay).
        self.replays = Replays(self, config.history_replay)
        if self.tracks_known:
            assert self.store is not None
            # Read by the open, before anybody joins: KNOWN lists them all.
            self.known.load(self.store.known_at_open())
        #: Each account's rooms but the default one, by user id, in the
        #: order it entered them (--auth with a store): its JOIN enters them.
        self.account_rooms: dict[str, list[str]] = {}
        # Changes of the rooms waiting to be written, one write at a time
        # (see _save).
        self._saves: dict[Hashable, tuple[Callable[[], Deferred[None]], str]] = {}
        self._saving = False
        # Audit lines written so far (each its own key in _saves).
        self._audits = 0
        self.bus: Bus = context.bus
        self.bus.attach(self)
        if self.keeps_rooms:
            assert self.store is not None
            # Read by the open: the rooms made before, as they were left.
            for kept in self.store.rooms_at_open():
                self.room.rooms.restore(kept)
            if self.keeps_accounts:
                self.account_rooms = self.store.account_rooms_at_open()
        #: Moderators, bans, mutes and slow mode (muca.server.moderation).
        self.moderation = Moderation(self.clock, self._sanction_over)
        if self.keeps_rooms and self.private_history:
            assert self.store is not None
            over = self.moderation.load(
                self.store.moderators_at_open(), self.store.sanctions_at_open()
            )
            for sanction in over:
                self._sanction_over(sanction)

    @property
    def private_history(self) -> bool:
        """Private and group messages are read back only when ids are
        authenticated (``--auth``)."""
        return self.portal is not None

    @cached_property
    def entrance(self) -> Entrance:
        """How every front-end logs its peers in (``muca.session.realm``):
        the login throttle, then the portal of this node's sessions."""
        return Entrance(session_portal(self, self.portal), self.logins, self.clock)

    def is_admin(self, uid: str) -> bool:
        """Whether ``uid`` logged in to an admin's account (``--auth db``)."""
        return self.accounts is not None and uid in self.accounts.admins

    @property
    def keeps_rooms(self) -> bool:
        """Whether the rooms are kept in this node's store: alone with a
        store (a cluster's rooms are kept by its broker, ``muca.cluster``)."""
        return self.store is not None and self.shared_rooms is None

    @property
    def keeps_accounts(self) -> bool:
        """Whether each user id's rooms are kept (``--auth``, rooms kept)."""
        return self.keeps_rooms and self.private_history

    @property
    def tracks_known(self) -> bool:
        """Whether user ids that joined become known (offline delivery)."""
        return self.store is not None and self.private_history

    # Connections

    def admit(self, connection: ChatConnection) -> str | None:
        """Count a new connection in, or say why it is refused."""
        if self.stopping:
            return "the server is shutting down"
        return self.counter.admit(connection.address)

    def release(self, connection: ChatConnection) -> None:
        """Count an admitted connection out."""
        self.counter.release(connection.address)

    def shed(self) -> None:
        """The bytes waiting for all connections are over
        ``--max-outbound-total``: disconnect the connections holding the
        most, one after another, as slow consumers until they are not, and
        drop their buffers at once (one already disconnected but still in
        its grace period too).

        Runs only when the total is over its cap (each connection keeps its
        share of it up to date as it writes), so it may look at them all."""
        total = self.outbound
        cap = total.cap
        if cap is None:
            return
        heaviest = sorted(self.connections, key=lambda c: c.waiting_bytes, reverse=True)
        for connection in heaviest:
            if total.held <= cap or not connection.waiting_bytes:
                return
            connection.drop_slow(
                f"the server's {cap} bytes for slow readers are taken and it"
                f" held the most ({connection.waiting_bytes})"
            )
            # Its buffers go now, not after the grace period.
            connection.drop_now()

    def refusing_joins(self) -> str | None:
        """Why a join would be refused now (``/healthz`` says it), or None."""
        if self.stopping:
            return "shutting down"
        return self.bus.unavailable()

    def close_all(self, timeout: float | None = None) -> Deferred[None]:
        """Close every connection; fire once all are gone.

        Each stops reading; the frames it had read but not handled yet
        (held by the rate limit or a password check) are answered with
        ``SERVER_SHUTDOWN`` (see ``ChatConnection.shutdown``). What is buffered
        gets ``timeout`` seconds to go out, then the remaining connections
        are dropped. No roster updates go out meanwhile.
        """
        if timeout is None:
            timeout = self.config.shutdown_wait
        self.stopping = True
        self._cancel_roster()
        self.flush_output()
        closing = list(self.connections)
        log.info("closing {count} connections", count=len(closing))
        if not closing:
            return succeed(None)
        for connection in closing:
            connection.shutdown(timeout)
        closed = gatherResults(
            [connection.when_closed() for connection in closing], consumeErrors=True
        )
        # Each is dropped once its grace is over; past that, a transport
        # that never reports its end is not waited for.
        closed.addTimeout(
            timeout + 1.0, self.clock, onTimeoutCancel=lambda _result, _timeout: None
        )
        return closed.addCallback(lambda _: None)

    # Joins and leaves

    def join(self, connection: ChatConnection, join: Join) -> Member | Deferred[Member]:
        """Add a connection to the room, at once or (in a cluster) once the
        bus agrees; refusals raise or fail with :class:`JoinRefused`."""
        ban = self.moderation.banned(SERVER, join.uid)
        if ban is not None:
            raise JoinRefused(
                BANNED, f"you are banned from this server {self._time_left(ban)}"
            )
        joined = self.bus.join(self.room, connection, join)
        if isinstance(joined, Deferred):
            return joined.addCallback(self._joined, connection)
        return self._joined(joined, connection)

    def _joined(self, member: Member, connection: ChatConnection) -> Member:
        log.info(
            "{uid!r} joined as {nickname!r} from {peer}",
            uid=member.uid,
            nickname=member.nickname,
            peer=connection.peer,
        )
        self._seen(member)
        return member

    def _seen(self, member: Member) -> None:
        """A member of this node joined or left: a known user (--auth),
        with its nickname and the time, here and in the store."""
        if not self.tracks_known:
            return
        assert self.store is not None
        self.known.seen(member.uid, member.nickname)
        now_ms = int(self.clock.seconds() * 1000)
        self.store.remember_user(member.uid, member.nickname, now_ms).addErrback(
            lambda failure: log.error(
                "muca: cannot remember user {uid!r}: {reason}",
                uid=member.uid,
                reason=failure.getErrorMessage(),
            )
        )

    def remember(self, uid: str, nickname: str) -> None:
        """``uid`` joined or left as ``nickname`` on another node of the
        cluster (which stored it as a known user): offline delivery to it
        works here too, and ``KNOWN`` lists it the same."""
        if self.tracks_known:
            self.known.seen(uid, nickname)

    def leave(self, member: Member, peer: str) -> None:
        """Remove a member whose connection has gone."""
        self.replays.left(member)
        self._known_pending.discard(member)
        if self.bus.leave(self.room, member):
            log.info("{uid!r} left from {peer}", uid=member.uid, peer=peer)
            self._seen(member)

    def roster_changed(self) -> None:
        """The bus says somebody joined or left: schedule a roster update."""
        self._schedule_roster()

    # History (muca.server.replay)

    def joined(self, member: Member, join: Join) -> None:
        """The ``ACK`` is out: start the replay a history client asked for,
        and send ``KNOWN`` after the first ``LIST`` if it has the capability."""
        if KNOWN in join.caps:
            self._known_pending.add(member)
        member.history = HISTORY in join.caps
        member.moderation = MODERATION in join.caps and self.private_history
        if member.moderation and self.keeps_rooms:
            self._deliver_reports(member)
        if member.rooms and self.account_rooms.get(member.uid):
            self._enter_again(member)
        self.replays.start(member, join)

    def _enter_again(self, member: Member) -> None:
        """An account's rooms, entered again at its ``JOIN`` (before its
        replay, which covers them): ``ROOMS`` shows them, their ``LIST``s
        follow. A kept name that is no room here now (the default room's,
        after ``--default-room`` named it) is left out."""
        rooms = self.room.rooms
        kept = []
        for name in self.account_rooms[member.uid]:
            room = rooms.get(name)
            if room is None or room is rooms.default:
                continue
            if self.moderation.banned(name, member.uid) is not None:
                continue
            kept.append(name)
            self.room.enter(member, room)
        self.account_rooms[member.uid] = kept
        self.bus.roster_changed()

    def _send_known(self, listed: Iterable[Member]) -> None:
        """``KNOWN`` to the newcomers among ``listed`` that asked for it:
        the known users who are away (none without --auth)."""
        pending = self._known_pending
        for member in listed:
            if member in pending:
                pending.discard(member)
                entries = self.known.away(lambda uid: uid in self.room)
                member.connection.send(known_payload(entries))

    def scroll_back(self, member: Member, request: History) -> None:
        """Answer ``HISTORY BEFORE``: older messages, then ``HISTORY MORE``."""
        self.replays.scroll_back(member, request)

    def search(self, member: Member, request: Search) -> None:
        """Answer ``SEARCH``: the matches, then ``SEARCH MORE``."""
        search.search(self, member, request)

    # Messages

    def accept(self, sender: Member, send: Send) -> None:
        """Accept one ``SEND``: route it and publish it on the bus.

        Raises :class:`ProtocolError` when nobody can receive it; reports
        unknown recipients to the sender after publishing for the others.
        """
        room = None
        if not send.to or ALL in send.to:
            room = self._room_to_send_to(sender, send)
        slow = self._check_may_send(sender, room)
        route = self.room.route(sender, send.to, room)
        pending = self.room.is_pending_join
        if self._roster_call is not None and (
            pending(sender) or any(pending(m) for m in route.recipients)
        ):
            # Recipients should know a sender's nickname before its first
            # words, and a newcomer should have its list before any message.
            self._roster_call.cancel()
            self._send_roster()
        unknown = route.unknown
        offline: tuple[str, ...] = ()
        if unknown and self.known and self.store is not None:
            # Offline delivery (--auth): a known id that is not joined gets
            # the message in its history.
            offline = tuple(name for name in unknown if name in self.known)
            unknown = tuple(name for name in unknown if name not in self.known)
        # With a history, a broadcast to an empty room is still kept for
        # those who join later.
        stored_anyway = self.store is not None and route.kind == ALL
        recipients = (
            ()
            if route.kind == ALL
            else tuple(m.uid for m in route.recipients) + offline
        )
        # The default room's broadcasts and private messages are "".
        in_room = "" if room is None or room is self.room.default else room.name
        draft = ChatMessage(
            0,
            int(self.clock.seconds() * 1000),
            sender.uid,
            route.kind,
            recipients,
            send.text,
            sender.nickname,
            in_room,
        )
        if slow and room is not None:
            self.moderation.sent(room.name, room.slow, sender.uid, len(room))
        if route.recipients or offline or stored_anyway:
            self.counters.accepted += 1
            # Delivered (deliver) or refused (not_accepted) through the
            # listener, now or later.
            self.bus.publish([draft])
        elif route.kind == ALL and sender.connection is not None:
            # A broadcast to a room nobody else is in, and no history: its
            # sender's own copy has no id (see deliver).
            sender.connection.accepted(draft)
        if unknown:
            names = ", ".join(unknown)
            sender.connection.send_error(
                UNKNOWN_RECIPIENT,
                f"not delivered to unknown user ids or nicknames: {names}",
                "SEND",
            )

    def _check_may_send(self, sender: Member, room: ChatRoom | None) -> bool:
        """Raise ``MUTED`` for a muted sender, ``SLOW_MODE`` for one that
        sent in this slow room too recently; True when the room's slow mode
        applies to this sender (its time is to be kept)."""
        moderation = self.moderation
        if not moderation and (room is None or not room.slow):
            return False
        mute = moderation.muted(None if room is None else room.name, sender.uid)
        if mute is not None:
            where = "here" if mute.room == SERVER else f"in the room {mute.room!r}"
            raise ProtocolError(
                MUTED,
                f"you are muted {where} {self._time_left(mute)}: not delivered",
                "SEND",
            )
        if room is None or not room.slow or self._moderates(sender.uid, room):
            return False
        wait = moderation.slow_wait(room.name, room.slow, sender.uid)
        if wait:
            raise ProtocolError(
                SLOW_MODE,
                f"slow mode in the room {room.name!r}: one message per"
                f" {room.slow} seconds; wait {wait} more seconds: not delivered",
                "SEND",
            )
        return True

    def _room_to_send_to(self, sender: Member, send: Send) -> ChatRoom:
        """The room a broadcast goes to: its ``ROOM`` (a rooms client's),
        else the default room; the sender must be in it."""
        rooms = self.room.rooms
        room = rooms.default if send.room is None else rooms.get(send.room)
        if room is None:
            raise ProtocolError(
                NO_SUCH_ROOM, f"there is no room {send.room!r}: not delivered", "SEND"
            )
        if sender.uid not in room:
            raise ProtocolError(
                NOT_IN_ROOM,
                f"you are not in the room {room.name!r}: enter it first; not delivered",
                "SEND",
            )
        return room

    def _not_accepted(self, failure: Failure, sender: Member) -> None:
        # Nothing of it was delivered (the bus promises it): say so.
        if not failure.check(StoreError, ClusterUnavailable):
            log.failure("message not accepted", failure)
            return
        if self.room.member(sender.uid) is not sender:
            return
        # The bus logs an outage once; the sender hears of every message.
        if failure.check(StoreError):
            sender.connection.send_error(
                STORE_UNAVAILABLE,
                "the message could not be stored, so it was not delivered;"
                " try again later",
                "SEND",
            )
        else:
            sender.connection.send_error(
                CLUSTER_UNAVAILABLE,
                "the message could not be accepted (the cluster cannot be"
                " reached); it was not delivered, send it again",
                "SEND",
            )

    def not_accepted(self, messages: Sequence[ChatMessage], failure: Failure) -> None:
        """The bus refused these messages (none was delivered): each sender
        still here hears of each of its own."""
        for message in messages:
            sender = self.room.member(message.sender)
            if sender is not None and sender.connection is not None:
                self._not_accepted(failure, sender)

    def deliver(self, accepted: Sequence[ChatMessage]) -> None:
        """Queue accepted messages, in id order, for their recipients here."""
        room = self.room
        rooms = room.rooms
        replays = self.replays
        for message in accepted:
            # Members joined on other nodes of a cluster have no connection
            # here: their own node writes to them.
            in_room: ChatRoom | None = None
            if message.kind == ALL:
                sender = message.sender
                in_room = rooms.get(message.room) if message.room else rooms.default
                members: list[Member] = (
                    []
                    if in_room is None
                    else [
                        m
                        for m in in_room.members()
                        if m.uid != sender and m.connection is not None
                    ]
                )
            else:
                found = (room.member(uid) for uid in message.recipients)
                members = [
                    m for m in found if m is not None and m.connection is not None
                ]
            members = replays.live(members, message)
            author = room.member(message.sender)
            if author is not None and author.connection is not None:
                author.connection.accepted(message)
            if members:
                self.counters.delivered += len(members)
                if in_room is None or not in_room.tagged:
                    # One encoding for all (every private message, and every
                    # broadcast in a room without rooms clients).
                    self.fan_out(Payload(message.payload()), members)
                else:
                    for obj, group in by_capability(
                        message.payload(), members, in_room.name
                    ):
                        self.fan_out(Payload(obj), group)
            self.last_delivered = message.id

    def passed(self, upto: int) -> None:
        """Messages up to ``upto`` went by (some with no recipient here)."""
        if upto > self.last_delivered:
            self.last_delivered = upto
        self.replays.passed(upto)

    # Roster updates

    def _schedule_roster(self) -> None:
        if self._roster_call is None and not self.stopping:
            config = self.config
            interval = config.list_interval * max(
                1.0, len(self.room) / config.list_interval_members
            )
            wait = self._last_roster + interval - self.clock.seconds()
            self._roster_call = self.clock.callLater(max(0.0, wait), self._send_roster)

    def _send_roster(self) -> None:
        self._roster_call = None
        self._last_roster = self.clock.seconds()
        updates = self.room.take_roster_updates()
        rooms = self.room.rooms
        listing = rooms.listing_changed
        if not updates and not listing:
            return
        if listing:
            # Before the rosters: a newcomer gets ROOMS before its first LIST
            # (the others theirs when due).
            self._refresh_rooms(newcomers_only=True)
        for update in updates:
            name = update.room
            if update.list_recipients:
                for obj, members in by_capability(
                    update.full_list, update.list_recipients, name
                ):
                    self.fan_out(Payload(obj), members)
            if update.delta is not None:
                for obj, members in by_capability(
                    update.delta, update.delta_recipients, name
                ):
                    self.fan_out(Payload(obj), members)
        # A timer's turn: nothing to coalesce with, and no reason to wait.
        self.flush_output()
        # Their first LIST is out: KNOWN and their replays may follow.
        for update in updates:
            if self._known_pending:
                self._send_known(update.list_recipients)
            self.replays.listed(update.list_recipients, update.room)

    def _rooms_interval(self) -> float:
        """Seconds between two rounds of ``ROOMS`` to every member: the
        list interval, times members × rooms / ``rooms_interval_entries``
        when that is more. A round is an entry per room per member (10,000
        members in 1,000 rooms: 10 million entries, 550 MB to write, each
        time any count changes), so its bytes per second are bounded
        however large the server grows: 5 s there by default."""
        config = self.config
        entries = len(self.room) * len(self.room.rooms)
        return config.list_interval * max(1.0, entries / config.rooms_interval_entries)

    def _refresh_rooms(self, newcomers_only: bool = False) -> None:
        """``ROOMS`` to every member whose view changed, when a round is
        due; else (``newcomers_only``) to those that had none yet, and the
        round is scheduled for when it is due."""
        rooms = self.room.rooms
        if not rooms.listing_changed:
            return
        now = self.clock.seconds()
        if now >= self._rooms_due:
            rooms.listing_changed = False
            self._rooms_due = now + self._rooms_interval()
            self._send_rooms(newcomers_only=False)
            return
        if newcomers_only:
            self._send_rooms(newcomers_only=True)
        if self._rooms_call is None and not self.stopping:
            self._rooms_call = self.clock.callLater(
                self._rooms_due - now, self._rooms_round
            )

    def _rooms_round(self) -> None:
        self._rooms_call = None
        self._refresh_rooms()

    def _send_rooms(self, newcomers_only: bool) -> None:
        """``ROOMS`` to each rooms client here whose view of the rooms
        changed since the last one it had (``newcomers_only``: to those
        that had none)."""
        outbox = self.outbox
        told = (
            m
            for m in self.room.members()
            if m.rooms
            and m.connection is not None
            and not (newcomers_only and m.shown is not None)
        )
        for member, line in self.room.rooms.encoded_listings(told):
            # What it was shown is kept as a hash (10,000 members' listings
            # of 1,000 rooms would be 500 MB). The hash of bytes is keyed at
            # random per process, so a peer cannot aim a topic at a
            # collision; one by chance would hold back one ROOMS until the
            # next change.
            shown = hash(line)
            if shown != member.shown:
                member.shown = shown
                # Written now, behind what this turn queued for it, not
                # queued: 10,000 listings of 55 kB would wait in memory.
                connection = member.connection
                outbox.flush_one(connection)
                connection.write_now(
                    EncodedPayload(line).for_framing(connection.framing)
                )

    # Rooms (capability "rooms")

    def enter(self, member: Member, request: Enter) -> None:
        """``ENTER``: into a room, made first when there is none and this
        user may make one; ``ENTERED`` now, the room's ``LIST`` with the next
        roster update. Refusals raise :class:`ProtocolError`. In a cluster
        the room is entered (or made) once the cluster agrees."""
        rooms = self.room.rooms
        name = request.room
        room = rooms.get(name)
        if room is None:
            if not rooms.may_create(self.is_admin(member.uid)):
                raise ProtocolError(
                    NO_SUCH_ROOM,
                    f"there is no room {name!r}, and this server does not let"
                    " you create one",
                    "ENTER",
                )
        elif member.uid in room:
            raise ProtocolError(
                ALREADY_IN_ROOM, f"you are in the room {name!r} already", "ENTER"
            )
        elif (ban := self.moderation.banned(name, member.uid)) is not None:
            raise ProtocolError(
                BANNED,
                f"you are banned from the room {name!r} {self._time_left(ban)}",
                "ENTER",
            )
        elif not room.may_enter(member.uid):
            raise ProtocolError(
                INVITE_ONLY,
                f"the room {name!r} is private: a member must invite you",
                "ENTER",
            )
        if self.shared_rooms is not None:
            self.shared_rooms.enter(member, name, rooms.may_create())
            return
        if room is None:
            room = rooms.create(name, member.uid, self._now_ms())
            self._save_room(room)
        self.room.enter(member, room)
        self.room_entered(member, room)

    def room_entered(self, member: Member, room: ChatRoom) -> None:
        """``member`` of this node entered ``room``: ``ENTERED``, and the
        room's roster with the next update."""
        member.connection.send(entered_payload(room.name, room.topic))
        # With history: the room's replay, once its LIST is out.
        self.replays.entered(member, room)
        self._account_room(member, room, True)
        self.bus.roster_changed()

    def exit(self, member: Member, request: Exit) -> None:
        """``EXIT``: out of a room; the others get its new roster."""
        room = self._room_of(member, request.room, "EXIT")
        self.room.exit(member, room)
        if self.shared_rooms is not None:
            self.shared_rooms.exit(member, room)
        self._account_room(member, room, False)
        self.bus.roster_changed()

    def set_room(self, member: Member, request: RoomSet) -> None:
        """``ROOMSET`` by the room's owner: topic (``TOPIC`` to its members
        when it changes), private, slow mode."""
        room = self.room.rooms.get(request.room)
        if room is None:
            raise _no_such_room(request.room, "ROOMSET")
        # A moderator (or an admin) may set a made room's slow mode alone.
        slow_only = (
            request.topic is None and request.private is None and room.owner is not None
        )
        if (room.owner is None or room.owner != member.uid) and not (
            slow_only and self._moderates(member.uid, room)
        ):
            who = "the server" if room.owner is None else "its owner"
            raise ProtocolError(
                NOT_ALLOWED,
                f"only {who} may change the room {room.name!r}",
                "ROOMSET",
            )
        if self.shared_rooms is not None:
            self.shared_rooms.set_room(member, request)
            return
        if request.private is not None:
            room.private = request.private
        if request.slow is not None and request.slow != room.slow:
            room.slow = request.slow
            if not room.slow:
                self.moderation.forget_room(room.name)
                self._notice(room, f"{member.nickname} turned slow mode off", member)
            else:
                self._notice(
                    room,
                    f"{member.nickname} set slow mode to {room.slow} seconds",
                    member,
                )
        topic_by = None
        if request.topic is not None and request.topic != room.topic:
            room.topic = request.topic
            topic_by = member.uid
        self.room_changed(room, topic_by)

    def room_changed(self, room: ChatRoom, topic_by: str | None) -> None:
        """``room``'s settings or invitations changed; ``topic_by``: the
        user id that set a new topic (its members here get ``TOPIC``)."""
        if topic_by is not None:
            told = [m for m in room.members() if m.rooms]
            self.fan_out(Payload(topic_payload(room.name, room.topic, topic_by)), told)
        self._save_room(room)
        self.room.rooms.listing_changed = True
        self.bus.roster_changed()

    def invite(self, member: Member, request: Invite) -> None:
        """``INVITE`` by a member: that user may enter (the room private)."""
        room = self._room_of(member, request.room, "INVITE")
        if self.shared_rooms is not None:
            self.shared_rooms.invite(member, request)
            return
        if request.uid not in room.invited and self.keeps_rooms:
            store, uid = self.store, request.uid
            assert store is not None
            self._save(
                ("invite", room.name, uid),
                lambda: store.save_invite(room.name, uid),
                f"the invitation of {uid!r} to the room {room.name!r}",
            )
        room.invited.add(request.uid)
        self.room_changed(room, None)

    # Moderation (capability "moderation", authenticating servers)

    def _moderates(self, uid: str, room: ChatRoom) -> bool:
        """Whether ``uid`` may moderate ``room``: a server admin, its owner,
        one of its moderators."""
        return (
            self.is_admin(uid)
            or (room.owner is not None and room.owner == uid)
            or self.moderation.is_moderator(room.name, uid)
        )

    def _time_left(self, sanction: Sanction) -> str:
        """``for 540 more seconds`` or ``for ever``."""
        left = self.moderation.seconds_left(sanction)
        if left is None:
            return "for ever"
        return f"for {left} more second{'s' if left != 1 else ''}"

    def _shown(self, uid: str) -> str:
        """A user as a notice names it: its nickname when joined, else its id."""
        member = self.room.member(uid)
        return uid if member is None else member.nickname

    def moderate(self, member: Member, request: Moderate) -> None:
        """``KICK``, ``BAN``, ``UNBAN``, ``MUTE``, ``UNMUTE``, ``MODERATOR``
        by ``member``: in a room (its owner, moderators and the admins may)
        or, without ``ROOM``, the whole server (the admins may). The room's
        members (and the actor) get a ``NOTICE``; the audit log has it."""
        action = request.action
        if self.shared_rooms is not None:
            raise ProtocolError(
                MODERATION_UNAVAILABLE,
                "moderation is not available on a cluster's nodes yet",
                action,
            )
        room = None
        if request.room is not None:
            room = self.room.rooms.get(request.room)
            if room is None:
                raise _no_such_room(request.room, action)
        uid = request.uid
        if room is None:
            allowed = self.is_admin(member.uid)
            what = "only the server's admins may do this server-wide"
        elif action == "MODERATOR":
            allowed = self.is_admin(member.uid) or room.owner == member.uid
            what = f"only the owner of the room {room.name!r} or an admin may"
        else:
            allowed = self._moderates(member.uid, room)
            what = f"only the moderators of the room {room.name!r} may"
            if (
                allowed
                and not self.is_admin(member.uid)
                and (self.is_admin(uid) or room.owner == uid)
            ):
                allowed = False
                what = "a room's owner and the server's admins are out of reach"
        if not allowed:
            raise ProtocolError(NOT_ALLOWED, f"{what} ({action})", action)
        target = self.room.member(uid)
        actor, whom = member.nickname, self._shown(uid)
        where = SERVER if room is None else room.name
        reason = request.reason
        if action in ("BAN", "MUTE") and self.moderation.full(
            action.lower(), where, uid
        ):
            raise ProtocolError(
                NOT_ALLOWED, "too many bans and mutes here: lift some first", action
            )
        if action == "MODERATOR" and request.named:
            assert room is not None
            if self.moderation.moderators_full(room.name, uid):
                raise ProtocolError(
                    NOT_ALLOWED, "this room has as many moderators as it may", action
                )
        if action == "KICK":
            if target is None or (room is not None and uid not in room):
                place = "here" if room is None else f"in the room {room.name!r}"
                raise ProtocolError(NOT_IN_ROOM, f"{uid!r} is not {place}", action)
            text = f"{actor} kicked {whom}"
        elif action in ("BAN", "MUTE"):
            kind = BAN if action == "BAN" else MUTE
            until = (
                None
                if request.seconds is None
                else self._now_ms() + request.seconds * 1000
            )
            sanction = Sanction(kind, where, uid, until, member.uid, reason)
            self.moderation.impose(sanction)
            self._keep_sanction(sanction, True)
            verb = "banned" if kind == BAN else "muted"
            text = f"{actor} {verb} {whom} {duration_text(request.seconds)}"
        elif action in ("UNBAN", "UNMUTE"):
            kind = BAN if action == "UNBAN" else MUTE
            lifted = self.moderation.lift(kind, where, uid)
            if lifted is not None:
                self._keep_sanction(lifted, False)
            text = f"{actor} {'unbanned' if kind == BAN else 'unmuted'} {whom}"
        else:
            assert room is not None
            self.moderation.name(room.name, uid, request.named)
            if self.store is not None:
                store, name, named = self.store, room.name, request.named
                self._save(
                    ("moderator", name, uid),
                    lambda: store.save_moderator(name, uid, named),
                    f"the moderator {uid!r} of the room {name!r}",
                )
            role = "a moderator" if request.named else "no longer a moderator"
            text = f"{actor} made {whom} {role}"
        if reason:
            text += f": {reason}"
        self._audit(member.uid, action, uid, where, request.seconds, reason)
        self._notice(room, text, member)
        if target is not None and action in ("KICK", "BAN"):
            self._put_out(target, room, action, text, member.uid, reason)

    def delete(self, member: Member, request: Delete) -> None:
        """``DELETE``: a message's text removed from history and search by
        its author, a moderator of its room or an admin; ``DELETED`` to
        those here who got it (its room's members, its parties)."""
        if self.shared_rooms is not None:
            raise ProtocolError(
                MODERATION_UNAVAILABLE,
                "moderation is not available on a cluster's nodes yet",
                "DELETE",
            )
        store = self.store
        if store is None:
            raise ProtocolError(
                NO_SUCH_MESSAGE, "this server keeps no messages", "DELETE"
            )
        found = store.message(request.id)
        found.addCallback(self._delete_found, member, request)
        found.addErrback(self._delete_failed, member)

    def _delete_found(
        self, message: ChatMessage | None, member: Member, request: Delete
    ) -> Deferred[None] | None:
        here = self.room.member(member.uid) is member
        rooms = self.room.rooms
        room = None
        if message is not None and message.kind == ALL:
            room = rooms.default if message.room == "" else rooms.get(message.room)
        readers = () if message is None else (message.sender, *message.recipients)
        if message is None or (message.kind != ALL and member.uid not in readers):
            if here:
                member.connection.send_error(
                    NO_SUCH_MESSAGE, f"there is no message {request.id}", "DELETE"
                )
            return None
        allowed = (
            message.sender == member.uid
            or self.is_admin(member.uid)
            or (room is not None and self._moderates(member.uid, room))
        )
        if not allowed:
            if here:
                member.connection.send_error(
                    NOT_ALLOWED,
                    "only its author or a moderator of its room may delete"
                    f" message {request.id}",
                    "DELETE",
                )
            return None
        assert self.store is not None
        done = self.store.delete_text(request.id)
        return done.addCallback(self._deleted, message, member, room, request)

    def _deleted(
        self,
        _: None,
        message: ChatMessage,
        member: Member,
        room: ChatRoom | None,
        request: Delete,
    ) -> None:
        if message.kind == ALL:
            told = [] if room is None else room.members()
        else:
            told = [
                m
                for uid in (message.sender, *message.recipients)
                if (m := self.room.member(uid)) is not None
            ]
        if self.room.member(member.uid) is member and member not in told:
            told.append(member)
        self.fan_out(Payload(deleted_payload(message.id)), told)
        where = "private" if message.kind != ALL else message.room or "default room"
        reason = f": {request.reason}" if request.reason else ""
        self._audit_line(
            member.uid,
            "delete",
            message.sender,
            f"message {message.id} ({where}){reason}",
        )

    def report(self, member: Member, request: Report) -> None:
        """``REPORT``: a message shown to its room's owner and moderators and
        to the admins: at once to those joined here with the moderation
        capability, at their next ``JOIN`` to the others (kept till then)."""
        store = self.store
        if self.shared_rooms is not None or store is None:
            raise ProtocolError(
                MODERATION_UNAVAILABLE,
                "reports need a server of its own with a database",
                "REPORT",
            )
        found = store.message(request.id)
        found.addCallback(self._report_found, member, request)
        found.addErrback(self._delete_failed, member, "REPORT")

    def _report_found(
        self, message: ChatMessage | None, member: Member, request: Report
    ) -> Deferred[None] | None:
        here = self.room.member(member.uid) is member
        readers = () if message is None else (message.sender, *message.recipients)
        if message is None or (message.kind != ALL and member.uid not in readers):
            if here:
                member.connection.send_error(
                    NO_SUCH_MESSAGE, f"there is no message {request.id}", "REPORT"
                )
            return None
        rooms = self.room.rooms
        room = None
        if message.kind == ALL:
            room = rooms.default if message.room == "" else rooms.get(message.room)
        moderators = set()
        if room is not None:
            if room.owner is not None:
                moderators.add(room.owner)
            moderators |= self.moderation.moderators.get(room.name, set())
        payload = {
            "CMD": "REPORT",
            "ID": message.id,
            "ROOM": None if room is None else room.name,
            "AUTHOR": message.sender,
            "TEXT": message.text,
            "BY": member.uid,
            "REASON": request.reason,
            "TS": self._now_ms(),
        }
        assert self.store is not None
        admins = self.store.admins()
        return admins.addCallback(
            self._send_report, moderators, payload, member, message
        )

    def _send_report(
        self,
        admins: list[str],
        moderators: set[str],
        payload: dict[str, object],
        member: Member,
        message: ChatMessage,
    ) -> None:
        told, later = [], []
        for uid in sorted(moderators | set(admins)):
            target = self.room.member(uid)
            if target is not None and target.moderation:
                told.append(target)
            else:
                later.append(uid)
        self.fan_out(Payload(payload), told)
        store = self.store
        if later and store is not None:
            report = native_json(payload)
            self._save(
                ("reports", self._audits + 1, message.id),
                lambda: store.save_reports(later, report),
                f"the report of message {message.id}",
            )
        self._audit_line(
            member.uid,
            "report",
            message.sender,
            f"message {message.id}"
            + (f": {payload['REASON']}" if payload["REASON"] else ""),
        )
        if self.room.member(member.uid) is member:
            where = payload["ROOM"] or self.room.rooms.default.name
            member.connection.send(
                notice_payload(
                    str(where),
                    f"your report of message {message.id} went to the moderators",
                )
            )

    def _deliver_reports(self, member: Member) -> None:
        """The reports kept for a moderator that just joined, now."""
        store = self.store
        assert store is not None

        def send(reports: list[str]) -> None:
            if self.room.member(member.uid) is not member:
                return
            for report in reports:
                member.connection.send(json.loads(report))

        store.take_reports(member.uid).addCallbacks(
            send,
            lambda failure: log.error(
                "muca: cannot read the reports for {uid!r}: {reason}",
                uid=member.uid,
                reason=failure.getErrorMessage(),
            ),
        )

    def _delete_failed(
        self, failure: Failure, member: Member, ref: str = "DELETE"
    ) -> None:
        if not failure.check(StoreError):
            log.failure("DELETE", failure)
        if self.room.member(member.uid) is member:
            member.connection.send_error(
                STORE_UNAVAILABLE, "the history cannot be read or changed now", ref
            )

    def _put_out(
        self,
        target: Member,
        room: ChatRoom | None,
        action: str,
        text: str,
        by: str,
        reason: str,
    ) -> None:
        """A kicked or banned member: out of ``room``, or off the server
        (``KICKED``, or a ban's ``ERROR BANNED``, then its connection closes)."""
        if room is not None:
            if target.uid in room:
                self.room.exit(target, room)
                self._account_room(target, room, False)
                self.room.rooms.listing_changed = True
                self.bus.roster_changed()
            return
        connection = target.connection
        if connection is None:
            return
        if action == "KICK":
            connection.send(kicked_payload(by, reason))
        else:
            connection.send_error(BANNED, text)
        connection.close()

    def _notice(
        self, room: ChatRoom | None, text: str, actor: Member | None = None
    ) -> None:
        """``NOTICE`` to the room's members that know it (the rooms or
        moderation capability; the default room's for a server-wide
        action), and to the actor."""
        place = self.room.rooms.default if room is None else room
        told = [m for m in place.members() if m.rooms or m.moderation]
        if actor is not None and actor not in told:
            told.append(actor)
        self.fan_out(Payload(notice_payload(place.name, text)), told)

    def _audit(
        self,
        actor: str,
        action: str,
        target: str,
        where: str,
        seconds: int | None,
        reason: str,
    ) -> None:
        """A moderation action in the audit log (who, what, whom, when, why)."""
        store = self.store
        if store is None:
            return
        place = "server" if where == SERVER else f"room {where}"
        span = "" if action not in ("BAN", "MUTE") else f" {duration_text(seconds)}"
        detail = f"{place}{span}" + (f": {reason}" if reason else "")
        self._audit_line(actor, action.lower(), target, detail)

    def _audit_line(self, actor: str, action: str, target: str, detail: str) -> None:
        """One line of the audit log, on its way to the store."""
        store = self.store
        if store is None:
            return
        now = self._now_ms()
        self._audits += 1
        self._save(
            ("audit", self._audits),
            lambda: store.audit(now, actor, action, target, detail),
            f"the audit of {action} {target!r}",
        )

    def _keep_sanction(self, sanction: Sanction, imposed: bool) -> None:
        """A ban or mute imposed (or ended) on its way to the store."""
        store = self.store
        if store is None:
            return
        key = ("sanction", sanction.kind, sanction.room, sanction.uid)
        if imposed:
            self._save(
                key,
                lambda: store.save_sanction(sanction),
                f"the {sanction.kind} of {sanction.uid!r}",
            )
        else:
            self._save(
                key,
                lambda: store.drop_sanction(sanction.kind, sanction.room, sanction.uid),
                f"the end of the {sanction.kind} of {sanction.uid!r}",
            )

    def _sanction_over(self, sanction: Sanction) -> None:
        """A timed ban or mute ended: forgotten, and said in its room."""
        self._keep_sanction(sanction, False)
        self._audit(
            "server",
            "UN" + sanction.kind.upper(),
            sanction.uid,
            sanction.room,
            None,
            "its time is over",
        )
        room = None if sanction.room == SERVER else self.room.rooms.get(sanction.room)
        if sanction.room == SERVER or room is not None:
            self._notice(
                room, f"the {sanction.kind} of {self._shown(sanction.uid)} is over"
            )

    def _account_room(self, member: Member, room: ChatRoom, inside: bool) -> None:
        """Keep that an account entered or left a room (``--auth``): its next
        ``JOIN`` enters the rooms it is in. The default room is every
        ``JOIN``'s, and not kept."""
        if not self.keeps_accounts or room is self.room.rooms.default:
            return
        store, uid, name = self.store, member.uid, room.name
        assert store is not None
        names = self.account_rooms.setdefault(uid, [])
        if inside:
            names.append(name)
        elif name in names:
            names.remove(name)
        since = self._now_ms()
        self._save(
            ("account", uid, name),
            lambda: store.save_account_room(uid, name, inside, since),
            f"that {uid!r} is {'in' if inside else 'out of'} the room {name!r}",
        )

    def _save_room(self, room: ChatRoom) -> None:
        """Keep a room made, or its settings (as they are when written)."""
        store = self.store
        if store is not None and self.keeps_rooms:
            self._save(
                ("room", room.name),
                lambda: store.save_room(room.stored()),
                f"the room {room.name!r}",
            )

    def _save(
        self, key: Hashable, work: Callable[[], Deferred[None]], what: str
    ) -> None:
        """A change of the rooms on its way to the store, after its answer.

        The writes go one at a time, in the order of the changes (a pool of
        database threads would reorder them); a change of what waits to be
        written already replaces it in its place, so that what waits is at
        most one write per room, invitation and account's room. A failure
        is logged; the change holds while the server runs."""
        self._saves[key] = (work, what)
        if not self._saving:
            self._next_save()

    def _next_save(self, _: object = None) -> None:
        if not self._saves:
            self._saving = False
            return
        self._saving = True
        key = next(iter(self._saves))
        work, what = self._saves.pop(key)
        work().addErrback(
            lambda failure: log.error(
                "muca: cannot keep {what}: {reason}",
                what=what,
                reason=failure.getErrorMessage(),
            )
        ).addBoth(self._next_save)

    def _now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def _room_of(self, member: Member, name: str, ref: str) -> ChatRoom:
        """The room of this name, which ``member`` must be in."""
        room = self.room.rooms.get(name)
        if room is None:
            raise _no_such_room(name, ref)
        if member.uid not in room:
            raise ProtocolError(
                NOT_IN_ROOM, f"you are not in the room {room.name!r}", ref
            )
        return room

    def _cancel_roster(self) -> None:
        for call in (self._roster_call, self._rooms_call):
            if call is not None and call.active():
                call.cancel()
        self._roster_call = self._rooms_call = None

    def stopFactory(self) -> None:
        self.moderation.stop()
        self._cancel_roster()
        self.flush_output()

    # Output

    def fan_out(self, payload: Payload, members: Iterable[Member]) -> None:
        """Queue the same encoded bytes for every member, written at the end
        of this reactor turn (see :class:`muca.server.output.Outbox`)."""
        # Members joined on other nodes of a cluster have no connection here.
        self.outbox.add(
            payload,
            [member.connection for member in members if member.connection is not None],
        )

    def flush_output(self) -> None:
        """Write all queued fan-out now."""
        self.outbox.flush()


def _no_such_room(name: str, ref: str) -> ProtocolError:
    return ProtocolError(NO_SUCH_ROOM, f"there is no room {name!r}", ref)
