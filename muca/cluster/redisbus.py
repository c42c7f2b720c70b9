"""The cluster bus: one room over several servers, through Redis.

Every node keeps a replica of the whole room in its own ``Room``: its own
connections' members, and the other nodes' members with no connection
(:data:`REMOTE`), so that routing and nickname checks see everyone while
fan-out writes only to local connections. Who is in the room is decided in
Redis by Lua scripts (``muca.cluster.scripts``); what happens in the room
(joins, leaves, messages) is one Redis stream that every node reads from
its last position, so every node applies the same events in the same order,
and a short loss of the connection to Redis loses and repeats nothing.
Message ids are given by the script that appends them to the stream (stream
order is id order), and a node delivers a message only if its id is above
the last one it delivered, which makes delivery exactly-once even when the
stream is read again after Redis lost its data.
"""

from __future__ import annotations

import json
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
from muca.cluster.history import HistoryWriter
from muca.cluster.publishing import Publisher
from muca.cluster.redisclient import ScriptCall, connect, connected
from muca.cluster.stream import READ_BLOCK_MS, StreamReader
from muca.protocol.messages import (
    ALL,
    CLUSTER_UNAVAILABLE,
    NICK_TAKEN,
    PRESENCE_DELTA,
    SERVER_FULL,
    UID_TAKEN,
    ChatMessage,
    Join,
    JoinRefused,
)
from muca.server.bus import BusListener, ClusterUnavailable
from muca.server.room import Member, Room

#: The connection of a member joined on another node.
REMOTE = None

#: Seconds between heartbeats; a node silent for HEARTBEAT_TTL is dead.
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TTL = 5.0
# No heartbeat from any node for this long: Redis was stopped, not a node.
STALL = 2.0
#: Seconds a command to Redis may take before the cluster counts as down.
COMMAND_TIMEOUT = 2.0
#: Stream entries kept (approximately): minutes of traffic, so a node that
#: lost Redis for a while reads on from where it stopped.
STREAM_MAXLEN = 200_000
#: Seconds a joining connection waits for its join to come back on the stream.
JOIN_WAIT = 10.0
# After Redis lost its data, seconds the other nodes get to register their
# members again before those that did not are dropped from the replica.
RESYNC_GRACE = 3.0 * HEARTBEAT_INTERVAL

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
        clock: IReactorTime | None = None,
        capacity: int | None = None,
        database: str | None = None,
    ) -> None:
        """``capacity``: members in the whole cluster's room (None: no limit);
        ``database``: the PostgreSQL conninfo every message is stored in
        before any node delivers it (None: messages are not stored); its
        schema exists already (the node's store, opened before the bus
        starts, made it), and the node reads the history from that store."""
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[assignment]
        self.clock = clock
        self.address = address
        self.capacity = capacity
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
            self.clock, self.node, self._stream, self._append_to_stream
        )
        self._heartbeat: task.LoopingCall | None = None
        self._pending: dict[str, tuple[Any, Join, Deferred[Member]]] = {}
        self._stale: set[str] = set()
        self._lost = False
        self._last_error = ""

    # Bus

    def attach(self, listener: BusListener) -> None:
        """Deliver to ``listener`` (a ChatFactory: it has the ``room``)."""
        self.listener = listener

    @property
    def room(self) -> Room:
        """The replica of the cluster's room."""
        return self.listener.room

    def roster_changed(self) -> None:
        """Roster changes travel as stream events; this node's own are due."""
        self.listener.roster_changed()

    def join(self, room: Room, connection: Any, join: Join) -> Deferred[Member]:
        """Register the member cluster-wide; fire when its join event is back."""
        if not self.ready or join.uid in self._pending:
            reason = (
                f"user id {join.uid!r} is already joining"
                if join.uid in self._pending
                else "the cluster's shared registry (Redis) cannot be reached;"
                " try again in a few seconds"
            )
            code = UID_TAKEN if join.uid in self._pending else CLUSTER_UNAVAILABLE
            return defer.fail(JoinRefused(code, reason))
        capacity = self.capacity or 0
        joined: Deferred[Member] = Deferred()
        # Before the script runs: its event may come back on the reader's
        # connection before its reply comes on this one.
        self._pending[join.uid] = (connection, join, joined)
        d = self._run(scripts.JOIN, join.uid, join.nickname, self.node, str(capacity))
        d.addCallbacks(
            self._registered,
            self._join_failed,
            callbackArgs=(join, joined),
            errbackArgs=(join, joined),
        )
        return joined

    def _registered(
        self, reply: list[Any], join: Join, joined: Deferred[Member]
    ) -> None:
        verdict = reply[0]
        if verdict != "OK":
            self._forget_pending(join.uid, joined)
            joined.errback(_refusal(verdict, join))
            return
        # Completed by the join's own event on the stream (see _apply_join).
        self.clock.callLater(JOIN_WAIT, self._join_timed_out, join.uid, joined)

    def _forget_pending(self, uid: str, joined: Deferred[Member]) -> bool:
        entry = self._pending.get(uid)
        if entry is None or entry[2] is not joined:
            return False
        del self._pending[uid]
        return True

    def _join_failed(
        self, failure: Failure, join: Join, joined: Deferred[Member]
    ) -> None:
        log.info("cluster: join failed: {error}", error=failure.getErrorMessage())
        if not self._forget_pending(join.uid, joined):
            return  # Its event came back after all: it is joined.
        joined.errback(
            JoinRefused(
                CLUSTER_UNAVAILABLE,
                "the cluster's shared registry (Redis) cannot be reached;"
                " try again in a few seconds",
            )
        )

    def _join_timed_out(self, uid: str, joined: Deferred[Member]) -> None:
        if not self._forget_pending(uid, joined):
            return
        self._run(scripts.LEAVE, uid, self.node).addErrback(lambda _: None)
        joined.errback(
            JoinRefused(
                CLUSTER_UNAVAILABLE,
                "the cluster did not confirm the join in time; try again",
            )
        )

    def leave(self, room: Room, member: Member) -> bool:
        """Remove a local member here at once, and cluster-wide."""
        if not room.leave(member):
            return False
        self.listener.roster_changed()
        # A leave that fails (Redis down) is made good by the sync that
        # follows the reconnection.
        self._run(scripts.LEAVE, member.uid, self.node).addErrback(self._command_failed)
        return True

    def publish(self, drafts: Sequence[ChatMessage]) -> Deferred[list[ChatMessage]]:
        """Queue drafts; all those queued while a batch is in flight go as the
        next batch, one script call (group commit)."""
        if not self.ready:
            return defer.fail(
                ClusterUnavailable("the cluster's Redis cannot be reached")
            )
        return self._publisher.publish(drafts)

    def _append_to_stream(
        self, drafts: list[ChatMessage], data: str, to: str, token: str
    ) -> Deferred[Any]:
        """Append a batch to the stream (no history): its ids follow the last
        one this node delivered."""
        return self._run(
            scripts.PUBLISH,
            str(self.last_delivered),
            str(len(drafts)),
            data,
            "",
            token,
            to,
        )

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
        from twisted.internet import reactor

        address = self.address
        self._commands = connect(
            reactor, address.host, address.port, address.db, COMMAND_TIMEOUT
        )
        self._reader = connect(
            reactor,
            address.host,
            address.port,
            address.db,
            READ_BLOCK_MS / 1000 + COMMAND_TIMEOUT,
        )
        if self.database is not None:
            self._writer = HistoryWriter(self.database, self._run)
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
        self.ready = False
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        # Our members leave with us (the others would wait for the heartbeat).
        d = self._sync_members([]) if self._commands is not None else defer.succeed([])
        d.addTimeout(COMMAND_TIMEOUT, self.clock)
        d.addErrback(lambda _: None)

        def disconnect(_: Any) -> Deferred[Any]:
            factories = [f for f in (self._commands, self._reader) if f is not None]
            return defer.gatherResults(
                [f.disconnect() for f in factories], consumeErrors=True
            ).addErrback(lambda _: None)

        d.addCallback(disconnect)
        if self._writer is not None:
            d.addBoth(lambda _: self._writer.close())
        return d

    # Heartbeat, node liveness, Redis losing its data

    @defer.inlineCallbacks
    def _beat(self) -> Any:
        try:
            epoch, known, removed = yield self._run(
                scripts.HEARTBEAT,
                self.node,
                secrets.token_hex(8),
                str(int(HEARTBEAT_TTL * 1000)),
                str(int(STALL * 1000)),
                str(int(RESYNC_GRACE * 1000)),
                self._epoch or "",
            )
            if int(removed):
                log.info("cluster: removed {n} dead node(s)", n=removed)
            if self._epoch is None:
                yield self._load()
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
                self._replay_all()
                yield self._resync()
            elif not int(known) or self._lost:
                log.info("cluster: registering our members again")
                yield self._resync()
            self._lost = False
            self._last_error = ""
            if self._publisher.unsure:
                yield self._publisher.check_unsure(connected(self._commands))
        except Exception as error:  # noqa: BLE001 (any failure: retry next beat)
            if str(error) != self._last_error:
                # Once per kind of failure, not every second.
                log.info("cluster: Redis unreachable: {error!r}", error=error)
                self._last_error = str(error)
            self._lost = True

    @defer.inlineCallbacks
    def _load(self) -> Any:
        """Load the registry and follow the stream from where it was taken."""
        reply = yield self._run(scripts.SNAPSHOT)
        position = reply[1]
        rows = [reply[i : i + 4] for i in range(2, len(reply), 4)]
        rows.sort(key=lambda row: int(row[3]))
        room = self.room
        for uid, nickname, _node, _seq in rows:
            self.listener.remember(uid)
            if uid not in room:
                room.join(REMOTE, nickname, uid, enforce_capacity=False)
        self._stream.read_from(position)
        if rows:
            self.listener.roster_changed()

    def _replay_all(self) -> None:
        """Redis has a new, empty stream: read it from its start; the other
        nodes' members that are not registered again soon are dropped."""
        self._stale = {m.uid for m in self.room.members() if m.connection is REMOTE}
        self._stream.read_from("0-0")
        self.clock.callLater(RESYNC_GRACE, self._drop_stale)

    def _drop_stale(self) -> None:
        stale, self._stale = self._stale, set()
        room = self.room
        for uid in stale:
            member = room.member(uid)
            if member is not None and member.connection is REMOTE:
                room.leave(member)
                self.listener.roster_changed()

    def _resync(self) -> Deferred[Any]:
        local = [m for m in self.room.members() if m.connection is not REMOTE]
        d = self._sync_members(local)
        d.addCallback(self._conflicts)
        return d

    def _sync_members(self, members: Sequence[Member]) -> Deferred[Any]:
        args = [self.node]
        for member in members:
            args += [member.uid, member.nickname]
        return self._run(scripts.SYNC, *args)

    def _conflicts(self, uids: list[str]) -> None:
        for uid in uids or ():
            member = self.room.member(uid)
            if member is not None and member.connection is not REMOTE:
                member.connection.send_error(
                    UID_TAKEN,
                    "your user id or nickname was taken while the"
                    " cluster was cut off; join again",
                )
                member.connection.close()

    # Applying the stream's entries (see muca.cluster.stream)

    def _apply(self, fields: dict[str, str]) -> None:
        kind = fields.get("t")
        if kind == "m":
            first = int(fields["f"])
            self._publisher.settle(fields.get("k", ""), first)
            self._apply_messages(first, fields)
            return
        data = json.loads(fields["d"])
        if kind == "j":
            self._apply_join(*data)
        elif kind == "l":
            self._apply_leave(*data)

    def _apply_messages(self, first: int, fields: dict[str, str]) -> None:
        """Deliver a batch's messages that have a recipient connected here.

        A batch this node published is taken from memory; one that is all
        for members of other nodes is passed over without decoding it.
        """
        drafts = self._publisher.own_batch(fields.get("k", ""))
        rows: list[Any] | None = None
        if drafts is not None:
            count = len(drafts)
        elif "n" in fields and "u" in fields:
            count = int(fields["n"])
            if self._for_us(fields["u"]):
                rows = json.loads(fields["d"])
        else:
            # Appended by an older node: decode it to know.
            rows = json.loads(fields["d"])
            count = len(rows)
        skip = max(0, self.last_delivered - first + 1)
        if skip >= count:
            return  # Delivered before (the stream is being read again).
        here = _connected_here(self.room)
        accepted = []
        if drafts is not None:
            for index in range(skip, count):
                m = drafts[index]
                if m.kind == ALL or here(m.recipients):
                    if m.id != first + index:
                        # A draft: its publishing has not been answered yet.
                        m = ChatMessage(
                            first + index, m.ts, m.sender, m.kind, m.recipients, m.text
                        )
                    accepted.append(m)
        elif rows is not None:
            for index in range(skip, count):
                ts, sender, kind, to, text = rows[index]
                if kind == ALL or here(to):
                    accepted.append(
                        ChatMessage(first + index, ts, sender, kind, tuple(to), text)
                    )
        last = first + count - 1
        self.last_delivered = last
        if accepted:
            self.listener.deliver(accepted)
        # Also when nothing was for us: replays compare with the last id.
        self.listener.passed(last)

    def _for_us(self, to: str) -> bool:
        """Whether a batch for ``to`` (its recipients' uids as JSON, or 0
        when it holds a broadcast) may have a recipient connected here."""
        return to == "0" or _connected_here(self.room)(json.loads(to))

    def _apply_join(self, uid: str, nickname: str, node: str, seq: int) -> None:
        room = self.room
        if node == self.node:
            pending = self._pending.pop(uid, None)
            if pending is None:
                return
            connection, join, joined = pending
            presence = PRESENCE_DELTA in join.caps
            try:
                member = room.join(
                    connection, nickname, uid, presence, enforce_capacity=False
                )
            except JoinRefused:
                # The registry gave us this id and nickname: whoever held
                # them in this replica left while Redis was losing its data.
                for stale in (room.member(uid), self._by_nickname(nickname)):
                    if stale is not None and stale.connection is REMOTE:
                        room.leave(stale)
                member = room.join(
                    connection, nickname, uid, presence, enforce_capacity=False
                )
            self.listener.roster_changed()
            joined.callback(member)
            return
        self._stale.discard(uid)
        self.listener.remember(uid)
        current = room.member(uid)
        if current is not None:
            if current.connection is not REMOTE or current.nickname == nickname:
                return
            room.leave(current)
        try:
            room.join(REMOTE, nickname, uid, enforce_capacity=False)
        except JoinRefused:
            # A stale holder of the nickname (see _replay_all) gives way.
            holder = self._by_nickname(nickname)
            if holder is None or holder.connection is not REMOTE:
                raise
            room.leave(holder)
            room.join(REMOTE, nickname, uid, enforce_capacity=False)
        self.listener.roster_changed()

    def _by_nickname(self, nickname: str) -> Member | None:
        for member in self.room.members():
            if member.nickname == nickname:
                return member
        return None

    def _apply_leave(self, uid: str, node: str) -> None:
        if node == self.node:
            return  # Our own members leave here at once (see leave()).
        member = self.room.member(uid)
        if member is not None and member.connection is REMOTE:
            self.room.leave(member)
            self.listener.roster_changed()


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


def _refusal(verdict: str, join: Join) -> JoinRefused:
    if verdict == "UID_TAKEN":
        return JoinRefused(UID_TAKEN, f"user id {join.uid!r} is already joined")
    if verdict == "NICK_TAKEN":
        return JoinRefused(NICK_TAKEN, f"nickname {join.nickname!r} is already in use")
    if verdict == "SERVER_FULL":
        return JoinRefused(SERVER_FULL, "the chat room is full")
    if verdict == "SETTLING":
        return JoinRefused(
            CLUSTER_UNAVAILABLE,
            "the cluster is recovering from a restart of its Redis; try again"
            " in a few seconds",
        )
    return JoinRefused(
        CLUSTER_UNAVAILABLE,
        "this server is reconnecting to the cluster; try again in a few seconds",
    )
