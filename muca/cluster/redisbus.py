"""The cluster bus: one room over several servers, through Redis.

Every node keeps a replica of the whole room in its own ``Room``: its own
connections' members, and the other nodes' members with no connection
(:data:`~muca.cluster.membership.REMOTE`), so that routing and nickname
checks see everyone while fan-out writes only to local connections. Who is
in the room is decided in Redis by Lua scripts (``muca.cluster.scripts``);
what happens in the room (joins, leaves, messages) is one Redis stream that
every node reads from its last position, so every node applies the same
events in the same order, and a short loss of the connection to Redis loses
and repeats nothing. Message ids are given by the script that appends them
to the stream (stream order is id order), and a node delivers a message
only if its id is above the last one it delivered, which makes delivery
exactly-once even when the stream is read again after Redis lost its data.

:class:`RedisBus` is the server's bus, the node's service and heartbeat,
and delivers the messages read from the stream; it owns one of each of:

- :class:`~muca.cluster.membership.Membership` (``membership.py``): joins
  and leaves, the replica of the room, registering again; and with it
  :class:`~muca.cluster.rooms.SharedRooms` (``rooms.py``): entering and
  leaving rooms, their settings and invitations, cluster-wide;
- :class:`~muca.cluster.publishing.Publisher` (``publishing.py``): batches
  of messages put on the stream, and those whose outcome is unsure;
- :class:`~muca.cluster.history.HistoryWriter` (``history.py``), with a
  database: each batch stored in PostgreSQL before it is appended;
- :class:`~muca.cluster.stream.StreamReader` (``stream.py``): reading the
  stream's entries in order.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.cluster import scripts
from muca.cluster.address import RedisAddress
from muca.cluster.entries import Batch, Entry, Joined, Left, Publication
from muca.cluster.heartbeat import HEARTBEAT_INTERVAL, HEARTBEAT_TTL, STALL
from muca.cluster.history import HistoryWriter
from muca.cluster.membership import REMOTE, Membership
from muca.cluster.publishing import Publisher
from muca.cluster.redisclient import ScriptCall, connect, connected
from muca.cluster.stream import READ_BLOCK_MS, StreamReader
from muca.protocol.messages import (
    ALL,
    STORE_UNAVAILABLE,
    ChatMessage,
    Join,
    JoinRefused,
)
from muca.server.bus import BusListener, ClusterUnavailable
from muca.server.room import Member, Room

#: Seconds a command to Redis may take before the cluster counts as down.
COMMAND_TIMEOUT = 2.0
#: Stream entries kept (approximately): minutes of traffic, so a node that
#: lost Redis for a while reads on from where it stopped.
STREAM_MAXLEN = 200_000
# After Redis lost its data, seconds the other nodes get to register their
# members again before those that did not are dropped from the replica.
RESYNC_GRACE = 3.0 * HEARTBEAT_INTERVAL
#: Seconds a JOIN made while Redis or the history database cannot be reached
#: (the node is starting, or an outage) waits for them before it is refused.
JOIN_WAIT_FOR_REDIS = 10.0

log = Logger()


class RedisBus(Service):
    """The bus of a cluster node (see the module's docstring).

    It is also a service: started, it connects to Redis, registers this
    node, loads the room's replica and follows the stream; stopped, it
    removes this node's members and disconnects.
    """

    def __init__(
        self,
        address: RedisAddress,
        reactor: IReactorTime,
        capacity: int | None = None,
        database: str | None = None,
        heartbeat_timeout: float = HEARTBEAT_TTL,
    ) -> None:
        """``reactor``: the clock of every timer, heartbeat and timeout, and
        (once started) the reactor the connections to Redis and the
        database's threads run on; ``capacity``: members in the whole
        cluster's room (None: no limit); ``database``: the PostgreSQL
        conninfo every message is stored in before any node delivers it
        (None: messages are not stored); its schema exists already (the
        node's store, opened before the bus starts, made it), and the node
        reads the history from that store; ``heartbeat_timeout``: seconds a
        node may go without a heartbeat before the others drop it and its
        members (at least ``heartbeat.MIN_HEARTBEAT_TIMEOUT``)."""
        self.reactor = reactor
        self.clock = reactor
        self.address = address
        self.heartbeat_timeout = heartbeat_timeout
        #: A fresh id per start: a node that comes back is a new node.
        self.node = secrets.token_hex(6)
        self.listener: Any = None
        self.database = database
        # Stores every batch before it is appended (with a database).
        self._writer: HistoryWriter | None = None
        self.ready = False
        self.last_delivered = 0
        self._epoch: str | None = None
        self._commands: Any = None
        self._reader: Any = None
        self._stream = StreamReader(self.clock, self._apply, self._caught_up)
        self._publisher = Publisher(
            self.clock, self.node, self._stream, self._append_to_stream, self._refused
        )
        self._membership = Membership(
            self.clock,
            self.node,
            capacity,
            self._run,
            self._stream,
            self._command_failed,
        )
        self._heartbeat: task.LoopingCall | None = None
        self._lost = False
        self._last_error = ""
        #: Seconds a join waits for Redis or the database (see join()).
        self.join_wait = JOIN_WAIT_FOR_REDIS
        self._join_waiters: list[Deferred[None]] = []
        # Messages refused since the outage began (logged with a count).
        self._refusals = 0

    # Bus

    def attach(self, listener: BusListener) -> None:
        """Deliver to ``listener`` (a ChatFactory: it has the ``room``); its
        rooms commands are decided cluster-wide (``muca.cluster.rooms``)."""
        self.listener = listener
        self._membership.listener = listener
        listener.shared_rooms = self._membership.rooms

    @property
    def room(self) -> Room:
        """The replica of the cluster's room."""
        return self.listener.room

    def roster_changed(self) -> None:
        """Roster changes travel as stream events; this node's own are due."""
        self.listener.roster_changed()

    def join(self, room: Room, connection: Any, join: Join) -> Deferred[Member]:
        """Register the member cluster-wide; fire when its join event is back.
        While Redis or the database cannot be reached the join waits for
        them, up to :attr:`join_wait` seconds, then is refused
        (``CLUSTER_UNAVAILABLE``, ``STORE_UNAVAILABLE``)."""
        if self.unavailable() is None:
            return self._membership.join(connection, join, True)
        waiter: Deferred[None] = Deferred()
        self._join_waiters.append(waiter)
        timer = self.clock.callLater(self.join_wait, self._stop_waiting, waiter)

        def try_now(_: None) -> Deferred[Member]:
            if timer.active():
                timer.cancel()
            reason = self.unavailable()
            if reason is not None and reason.startswith("store:"):
                raise JoinRefused(
                    STORE_UNAVAILABLE,
                    "the history database cannot be reached; try again in a"
                    " few seconds",
                )
            return self._membership.join(connection, join, reason is None)

        return waiter.addCallback(try_now)

    def _stop_waiting(self, waiter: Deferred[None]) -> None:
        if waiter in self._join_waiters:
            self._join_waiters.remove(waiter)
            waiter.callback(None)

    def _wake_joins(self) -> None:
        """Let the held joins try: Redis can be reached (or the node stops)."""
        waiters, self._join_waiters = self._join_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def unavailable(self) -> str | None:
        """Why a join would be held (and refused) now, or None if it would
        not: ``cluster: Redis unreachable`` or ``store: ...``."""
        if (
            not self.ready
            or self._lost
            or connected(self._commands) is None
            or connected(self._reader) is None
        ):
            return "cluster: Redis unreachable"
        if self._writer is not None and self._writer.problem is not None:
            return f"store: {self._writer.problem}"
        return None

    def leave(self, room: Room, member: Member) -> bool:
        """Remove a local member here at once, and cluster-wide."""
        return self._membership.leave(room, member)

    def publish(self, drafts: Sequence[ChatMessage]) -> None:
        """Queue drafts; all those queued while a batch is in flight go as the
        next batch, one script call (group commit). They are delivered when
        read back from the stream; refusals go to ``not_accepted``."""
        if not self.ready:
            error = ClusterUnavailable("the cluster's Redis cannot be reached")
            self._refused(list(drafts), Failure(error))
            return
        self._publisher.publish(drafts)

    def _refused(self, drafts: list[ChatMessage], failure: Failure) -> None:
        # Logged once when refusals start, and with their count once Redis
        # and the database answer again: not once per message.
        if not self._refusals:
            log.info(
                "cluster: refusing messages: {error}", error=failure.getErrorMessage()
            )
        self._refusals += len(drafts)
        self.listener.not_accepted(drafts, failure)

    def _append_to_stream(self, batch: Publication) -> Deferred[Any]:
        """Append a batch to the stream (no history): its ids follow the last
        one this node delivered."""
        return self._run(scripts.PUBLISH, *batch.arguments(self.last_delivered, None))

    def _caught_up(self) -> None:
        """The reader has read on: batches with no answer may be settled."""
        self._publisher.caught_up()

    # Redis commands

    def _run(self, script: str, *args: str) -> Deferred[Any]:
        protocol = connected(self._commands)
        if protocol is None:
            return defer.fail(ClusterUnavailable("not connected to Redis"))
        call = _script_calls.get(script)
        if call is None:
            call = _script_calls[script] = ScriptCall(
                script, scripts.KEYS, [str(STREAM_MAXLEN)]
            )
        # No reply within COMMAND_TIMEOUT fails it (see RedisProtocol.command).
        d = protocol.command(call.by_sha(args))
        return d.addErrback(_unknown_script, protocol, call, args)

    def _command_failed(self, failure: Failure) -> None:
        self._lost = True
        error = failure.getErrorMessage()
        log.info("cluster: Redis command failed: {error}", error=error)

    # Service

    def startService(self) -> None:
        super().startService()
        address = self.address
        self._commands = connect(
            self.reactor,
            address.host,
            address.port,
            address.db,
            COMMAND_TIMEOUT,
            "commands",
        )
        self._reader = connect(
            self.reactor,
            address.host,
            address.port,
            address.db,
            READ_BLOCK_MS / 1000 + COMMAND_TIMEOUT,
            "stream",
        )
        if self.database is not None:
            self._writer = HistoryWriter(self.reactor, self.database, self._run)
            self._writer.start()
            self._publisher.writer = self._writer
        self._heartbeat = task.LoopingCall(self._beat)
        self._heartbeat.clock = self.clock
        log.info("cluster: connecting to {address}", address=self.address)
        # The first beat a little later: the connections are being made.
        self._heartbeat.start(HEARTBEAT_INTERVAL, now=False).addErrback(
            lambda f: log.failure("cluster heartbeat stopped", f)
        )
        self._stream.start(self._reader)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stream.stop()
        self._membership.stop()
        self.ready = False
        # Refused now: the node is going.
        self._wake_joins()
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        # Our members leave with us (the others would wait for the heartbeat).
        d = (
            self._membership.sync([])
            if self._commands is not None
            else defer.succeed([])
        )
        d.addTimeout(COMMAND_TIMEOUT, self.clock)
        d.addErrback(lambda _: None)

        def disconnect(_: Any) -> Deferred[Any]:
            links = [link for link in (self._commands, self._reader) if link]
            return defer.gatherResults(
                [link.disconnect() for link in links], consumeErrors=True
            ).addErrback(lambda _: None)

        d.addCallback(disconnect)
        if self._writer is not None:
            d.addBoth(lambda _: self._writer.close())
        return d

    # Heartbeat, node liveness, Redis losing its data

    @defer.inlineCallbacks
    def _beat(self) -> Any:
        if self._writer is not None:
            # Whether the database answers, also when Redis does not.
            self._writer.probe()
        try:
            epoch, known, removed = yield self._run(
                scripts.HEARTBEAT,
                self.node,
                secrets.token_hex(8),
                str(int(self.heartbeat_timeout * 1000)),
                str(int(STALL * 1000)),
                str(int(RESYNC_GRACE * 1000)),
                self._epoch or "",
            )
            if int(removed):
                log.info("cluster: removed {n} dead node(s)", n=removed)
            if self._epoch is None:
                yield self._membership.load()
                self._epoch = epoch
                self._stream.following = True
                self.ready = True
                log.info(
                    "cluster: node {node} joined {address}",
                    node=self.node,
                    address=self.address,
                )
            elif epoch != self._epoch:
                log.info("cluster: Redis lost its data; registering our members again")
                self._epoch = epoch
                self._membership.replay_all(RESYNC_GRACE)
                yield self._membership.resync()
            elif not int(known) or self._lost:
                log.info("cluster: registering our members again")
                yield self._membership.resync()
            self._lost = False
            self._last_error = ""
            if self.unavailable() is None:
                self._wake_joins()
                if self._refusals:
                    log.info(
                        "cluster: {n} messages refused during the outage",
                        n=self._refusals,
                    )
                    self._refusals = 0
            if self._publisher.unsure:
                yield self._publisher.check_unsure(connected(self._commands))
        except Exception as error:  # noqa: BLE001 (any failure: retry next beat)
            if str(error) != self._last_error:
                # Once per kind of failure, not every second.
                log.info("cluster: Redis unreachable: {error!r}", error=error)
                self._last_error = str(error)
            self._lost = True

    # Applying the stream's entries (see muca.cluster.stream)

    def _apply(self, entry: Entry) -> None:
        if isinstance(entry, Batch):
            self._publisher.settle(entry.token, entry.first)
            self._apply_messages(entry)
        elif isinstance(entry, Joined):
            self._membership.apply_join(entry)
        elif isinstance(entry, Left):
            self._membership.apply_leave(entry)
        else:
            self._membership.rooms.apply(entry)

    def _apply_messages(self, batch: Batch) -> None:
        """Deliver a batch's messages that have a recipient connected here.

        A batch this node published is taken from memory; one that is all
        for members of other nodes is passed over without decoding it.
        """
        first = batch.first
        drafts = self._publisher.own_batch(batch.token)
        rows: list[Any] | None = None
        if drafts is not None:
            count = len(drafts)
        elif batch.count is not None:
            count = batch.count
            if self._for_us(batch):
                rows = batch.rows()
        else:
            # Appended by an older node: decode it to know.
            rows = batch.rows()
            count = len(rows)
        skip = max(0, self.last_delivered - first + 1)
        if skip >= count:
            return  # Delivered before (the stream is being read again).
        here = _connected_here(self.room)
        accepted = []
        if drafts is not None:
            # Our own drafts: their ids are the stream's.
            for index in range(skip, count):
                m = drafts[index]
                if m.kind == ALL or here(m.recipients):
                    accepted.append(
                        ChatMessage(
                            first + index,
                            m.ts,
                            m.sender,
                            m.kind,
                            m.recipients,
                            m.text,
                            room=m.room,
                        )
                    )
        elif rows is not None:
            accepted = batch.messages(rows, skip, here)
        last = first + count - 1
        self.last_delivered = last
        if accepted:
            self.listener.deliver(accepted)
        # Also when nothing was for us: replays compare with the last id.
        self.listener.passed(last)

    def _for_us(self, batch: Batch) -> bool:
        """Whether ``batch`` may have a recipient connected here (it holds
        a broadcast, or one of its recipients is)."""
        uids = batch.recipients()
        return uids is None or _connected_here(self.room)(uids)


#: The scripts' calls, made once each.
_script_calls: dict[str, ScriptCall] = {}


def _unknown_script(
    failure: Failure, protocol: Any, call: ScriptCall, args: tuple[str, ...]
) -> Any:
    """Redis lost its scripts (it restarted): send the script itself."""
    if str(failure.value).startswith("NOSCRIPT"):
        return protocol.command(call.whole(args))
    return failure


def _connected_here(room: Room) -> Callable[[Sequence[str]], bool]:
    """A test of whether any of some uids is a member connected to this
    node (a loop, not ``any()`` over a generator: it runs per message)."""
    member = room.member

    def here(uids: Sequence[str]) -> bool:
        for uid in uids:
            found = member(uid)
            if found is not None and found.connection is not REMOTE:
                return True
        return False

    return here
