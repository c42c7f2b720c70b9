"""Who is in the cluster's room: joins and leaves through the registry in
Redis, and this node's replica of the room.

Every node keeps the whole room in its own ``Room``: its own connections'
members, and the other nodes' members with no connection (:data:`REMOTE`).
A join is decided by a script in Redis and completed when its event comes
back on the stream; the other nodes' joins and leaves come the same way.
After Redis lost its data or the node was cut off, the node registers its
members again, and the other nodes' members that are not registered again
in time are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.cluster import scripts
from muca.cluster.entries import Joined, Left
from muca.cluster.rooms import SharedRooms
from muca.cluster.stream import StreamReader
from muca.protocol.confusables import skeleton
from muca.protocol.messages import (
    CLUSTER_UNAVAILABLE,
    PRESENCE_DELTA,
    ROOMS,
    SERVER_FULL,
    UID_TAKEN,
    Join,
    JoinRefused,
)
from muca.server.room import (
    Member,
    Room,
    nick_is_a_uid,
    nick_looks_taken,
    nick_taken,
    uid_is_a_nickname,
    uid_taken,
)

#: The connection of a member joined on another node.
REMOTE = None

#: Seconds a joining connection waits for its join to come back on the stream.
JOIN_WAIT = 10.0

# The cluster's log lines keep the one namespace they had in one module.
log = Logger(namespace="muca.cluster.redisbus")


class Membership:
    """The members of the room, as this node knows them.

    ``run`` runs one of the cluster's scripts; ``stream`` is the node's
    reader (a snapshot of the registry tells where to read from);
    ``command_failed`` hears of a leave that Redis did not take.
    :attr:`listener` is the bus's listener (it has the ``room``);
    :attr:`rooms` the members' rooms (``muca.cluster.rooms``), which the
    snapshot and registering again carry too.
    """

    def __init__(
        self,
        clock: IReactorTime,
        node: str,
        capacity: int | None,
        run: Callable[..., Deferred[Any]],
        stream: StreamReader,
        command_failed: Callable[[Failure], None],
    ) -> None:
        self.clock = clock
        self.node = node
        self.capacity = capacity
        self._run = run
        self._stream = stream
        self._command_failed = command_failed
        self.rooms = SharedRooms(node, run, command_failed)
        self._listener: Any = None
        self._pending: dict[str, tuple[Any, Join, Deferred[Member]]] = {}
        self._stale: set[str] = set()
        # Drops the members not registered again after Redis lost its data.
        self._drop_call: IDelayedCall | None = None

    @property
    def listener(self) -> Any:
        """The bus's listener, the node's ``ChatFactory``."""
        return self._listener

    @listener.setter
    def listener(self, listener: Any) -> None:
        self._listener = listener
        self.rooms.listener = listener

    def stop(self) -> None:
        """The node stops: no timer of ours is left behind."""
        if self._drop_call is not None and self._drop_call.active():
            self._drop_call.cancel()
        self._drop_call = None

    @property
    def room(self) -> Room:
        """The replica of the cluster's room."""
        return self.listener.room

    # Joins and leaves of this node's members

    def join(self, connection: Any, join: Join, ready: bool) -> Deferred[Member]:
        """Register the member cluster-wide; fire when its join event is
        back. ``ready``: whether the node is in the cluster."""
        if not ready or join.uid in self._pending:
            reason = (
                f"user id {join.uid!r} is already joining"
                if join.uid in self._pending
                else "the cluster's shared registry (Redis) cannot be reached;"
                " try again in a few seconds"
            )
            code = UID_TAKEN if join.uid in self._pending else CLUSTER_UNAVAILABLE
            return defer.fail(JoinRefused(code, reason))
        if join.nickname != join.uid and join.nickname in self.room.known:
            # A user this node's database knows, that the registry may not
            # (it learns known ids from the joins it decides): refused here.
            # Everything else the registry decides, as Room.check_names would.
            return defer.fail(nick_is_a_uid(join.nickname))
        capacity = self.capacity or 0
        joined: Deferred[Member] = Deferred()
        # The join's timeout, once Redis has accepted it: cancelled first
        # thing when the join completes, whichever way.
        timer: list[IDelayedCall] = []
        joined.addBoth(_cancel_timer, timer)
        # Before the script runs: its event may come back on the reader's
        # connection before its reply comes on this one.
        self._pending[join.uid] = (connection, join, joined)
        d = self._run(
            scripts.JOIN,
            join.uid,
            join.nickname,
            self.node,
            str(capacity),
            skeleton(join.nickname),
            "1" if self.listener.tracks_known else "0",
        )
        d.addCallbacks(
            self._registered,
            self._join_failed,
            callbackArgs=(join, joined, timer),
            errbackArgs=(join, joined),
        )
        return joined

    def _registered(
        self,
        reply: list[Any],
        join: Join,
        joined: Deferred[Member],
        timer: list[IDelayedCall],
    ) -> None:
        verdict = reply[0]
        if verdict != "OK":
            self._forget_pending(join.uid, joined)
            joined.errback(_refusal(reply, join))
            return
        if joined.called:
            return  # Its event came back before the script's reply.
        # Completed by the join's own event on the stream (see apply_join).
        timer.append(
            self.clock.callLater(JOIN_WAIT, self._join_timed_out, join.uid, joined)
        )

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

    # The replica, and registering again

    @defer.inlineCallbacks
    def load(self) -> Any:
        """Load the registry and follow the stream from where it was taken."""
        reply = yield self._run(scripts.SNAPSHOT)
        position = reply[1]
        self.rooms.load(reply[2])
        rows = [reply[i : i + 5] for i in range(3, len(reply), 5)]
        rows.sort(key=lambda row: int(row[3]))
        room = self.room
        placed = []
        for uid, nickname, _node, _seq, rooms in rows:
            self.listener.remember(uid, nickname)
            if uid not in room:
                placed.append((room.join(REMOTE, nickname, uid, decided=True), rooms))
        self.rooms.place(placed)
        self._stream.read_from(position)
        if rows or len(room.rooms) > 1:
            self.listener.roster_changed()

    def replay_all(self, grace: float) -> None:
        """Redis has a new, empty stream: read it from its start; the other
        nodes' members that are not registered again within ``grace``
        seconds are dropped."""
        self._stale = {m.uid for m in self.room.members() if m.connection is REMOTE}
        self._stream.read_from("0-0")
        self.stop()
        self._drop_call = self.clock.callLater(grace, self._drop_stale)

    def _drop_stale(self) -> None:
        self._drop_call = None
        stale, self._stale = self._stale, set()
        room = self.room
        for uid in stale:
            member = room.member(uid)
            if member is not None and member.connection is REMOTE:
                room.leave(member)
                self.listener.roster_changed()

    def resync(self) -> Deferred[Any]:
        """Register this node's members again; those whose id or nickname
        another node took meanwhile are told and disconnected."""
        local = [m for m in self.room.members() if m.connection is not REMOTE]
        d = self.sync(local)
        d.addCallback(self._conflicts)
        return d

    def sync(self, members: Sequence[Member]) -> Deferred[Any]:
        """Make ``members`` this node's whole registration in Redis, each in
        the rooms it is in here (the rooms this node knows are made again
        if Redis lost them)."""
        rooms = self.rooms
        args = [self.node, rooms.definitions() if members else "[]"]
        for member in members:
            args += [member.uid, member.nickname, member.look, rooms.keys_of(member)]
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

    # Join and leave events read from the stream

    def apply_join(self, event: Joined) -> None:
        """``event`` was read from the stream: a join of ours completes, one
        of another node's enters the replica."""
        uid, nickname, node = event.uid, event.nickname, event.node
        room = self.room
        if node == self.node:
            pending = self._pending.pop(uid, None)
            if pending is None:
                return
            connection, join, joined = pending
            presence = PRESENCE_DELTA in join.caps
            rooms = ROOMS in join.caps
            try:
                member = room.join(
                    connection, nickname, uid, presence, rooms=rooms, decided=True
                )
            except JoinRefused:
                # The registry gave us this id and nickname: whoever held
                # them in this replica left while Redis was losing its data.
                for stale in (room.member(uid), self._by_nickname(nickname)):
                    if stale is not None and stale.connection is REMOTE:
                        room.leave(stale)
                member = room.join(
                    connection, nickname, uid, presence, rooms=rooms, decided=True
                )
            self.listener.roster_changed()
            joined.callback(member)
            return
        self._stale.discard(uid)
        self.listener.remember(uid, nickname)
        current = room.member(uid)
        if current is not None:
            if current.connection is not REMOTE:
                return
            if current.nickname == nickname:
                if event.rooms is not None:
                    # Registered again by its node, in these rooms.
                    self.rooms.reconcile(current, event.rooms)
                    self.listener.roster_changed()
                return
            room.leave(current)
        try:
            member = room.join(REMOTE, nickname, uid, decided=True)
        except JoinRefused:
            # A stale holder of the nickname (see replay_all) gives way.
            holder = self._by_nickname(nickname)
            if holder is None or holder.connection is not REMOTE:
                raise
            room.leave(holder)
            member = room.join(REMOTE, nickname, uid, decided=True)
        if event.rooms is not None:
            self.rooms.reconcile(member, event.rooms)
        self.listener.roster_changed()

    def _by_nickname(self, nickname: str) -> Member | None:
        for member in self.room.members():
            if member.nickname == nickname:
                return member
        return None

    def apply_leave(self, event: Left) -> None:
        """``event`` was read from the stream: another node's member goes."""
        uid, node = event.uid, event.node
        if node == self.node:
            return  # Our own members leave here at once (see leave()).
        member = self.room.member(uid)
        if member is not None and member.connection is REMOTE:
            self.room.leave(member)
            self.listener.remember(uid, member.nickname)
            self.listener.roster_changed()


def _cancel_timer(result: Any, timer: list[IDelayedCall]) -> Any:
    """A join completed: its timeout, if it has one, goes."""
    for call in timer:
        if call.active():
            call.cancel()
    return result


def _refusal(reply: list[Any], join: Join) -> JoinRefused:
    verdict = reply[0]
    if verdict == "UID_TAKEN":
        return uid_taken(join.uid)
    if verdict == "UID_IS_NICK":
        return uid_is_a_nickname(join.uid)
    if verdict == "NICK_TAKEN":
        return nick_taken(join.nickname)
    if verdict == "NICK_IS_UID":
        return nick_is_a_uid(join.nickname)
    if verdict == "NICK_LOOKS":
        return nick_looks_taken(join.nickname, str(reply[1]))
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
