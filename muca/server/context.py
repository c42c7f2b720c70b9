"""What a node is given: its clock, its configuration, its store, its bus
and its counters, in one :class:`NodeContext` passed to
``muca.server.node.ChatFactory``. Nothing in the node looks these up
globally: the composition root (``muca.service``) builds them from the
command line, the tests from a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.cred.portal import Portal
from twisted.internet.interfaces import IReactorTime

from muca.protocol.wire import DEFAULT_MAX_FRAME
from muca.server.bus import Bus, LocalBus
from muca.server.counters import Counters
from muca.server.limits import DEFAULT_BURST, DEFAULT_MAX_PER_ADDRESS, DEFAULT_RATE
from muca.server.logins import DEFAULT_LOGIN_DELAY, DEFAULT_LOGIN_DELAY_MAX
from muca.server.output import Outbox
from muca.server.replay import DEFAULT_HISTORY_REPLAY
from muca.server.rooms import DEFAULT_ROOM, CreatePolicy
from muca.store.base import MessageStore

DEFAULT_LIST_INTERVAL = 0.1
# A roster update costs a write to every member, and the members' clients as
# much again: past this many members the interval grows with the room (0.5 s
# at 10,000 with the default), so that a storm of joins keeps those costs to
# a bounded share of the time instead of growing with N² per second.
LIST_INTERVAL_MEMBERS = 2000
# ROOMS to every member, after a count changed, at most once per list
# interval times members × rooms / this (5 s at 10,000 members in 1,000
# rooms, with the default list interval; see ChatFactory._rooms_interval).
ROOMS_INTERVAL_ENTRIES = 200_000
DEFAULT_MAX_OUTBOUND = 4 * 1024 * 1024
DEFAULT_JOIN_TIMEOUT = 30.0
# Seconds a closed connection gets to take what is still buffered for it.
DEFAULT_CLOSE_GRACE = 1.0
# Seconds a shutdown waits for the connections to close before dropping them.
DEFAULT_SHUTDOWN_WAIT = 1.0
#: Seconds an original client's output waits after its ``ACK`` by default,
#: so that the ``ACK`` arrives in a read of its own (see
#: ``ChatConnection._hold_after_ack``).
DEFAULT_ACK_ALONE = 0.02


@dataclass(frozen=True)
class NodeConfig:
    """A node's limits, intervals and timeouts (``twistd muca``'s options).

    ``None`` for ``join_timeout``, ``rate``, ``login_delay`` or a cap turns
    it off."""

    #: Bytes a version-2 client's frame may take (``--max-frame``).
    max_frame: int = DEFAULT_MAX_FRAME
    #: Seconds between two roster updates (``--list-interval``)...
    list_interval: float = DEFAULT_LIST_INTERVAL
    #: ...times members / this many in a larger room.
    list_interval_members: int = LIST_INTERVAL_MEMBERS
    #: ``ROOMS`` rounds as far apart as the list interval, times members ×
    #: rooms / this many when that is more.
    rooms_interval_entries: int = ROOMS_INTERVAL_ENTRIES
    #: Members the room takes (``--max-members``).
    capacity: int | None = None
    #: Bytes that may wait for one connection (``--max-outbound``)...
    max_outbound: int = DEFAULT_MAX_OUTBOUND
    #: ...and for all together (``--max-outbound-total``).
    max_outbound_total: int | None = None
    #: Seconds a connection has to join (``--join-timeout``).
    join_timeout: float | None = DEFAULT_JOIN_TIMEOUT
    #: Frames a second and the burst a connection may send (``--rate-*``).
    rate: float | None = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    #: Connections in all and from one address (``--max-connections``,
    #: ``--max-per-address``); loopback exempt from the latter when
    #: ``exempt_loopback``.
    max_connections: int | None = None
    max_per_address: int | None = DEFAULT_MAX_PER_ADDRESS
    exempt_loopback: bool = False
    #: A failed login's first and longest delay (``--login-delay*``).
    login_delay: float | None = DEFAULT_LOGIN_DELAY
    login_delay_max: float = DEFAULT_LOGIN_DELAY_MAX
    #: Seconds a closed connection gets to take what is buffered for it.
    close_grace: float = DEFAULT_CLOSE_GRACE
    #: Seconds an original-framing client's output waits after its ``ACK``
    #: (0: not at all).
    ack_alone: float = DEFAULT_ACK_ALONE
    #: Messages replayed at a history client's ``JOIN`` (``--history-replay``).
    history_replay: int = DEFAULT_HISTORY_REPLAY
    #: Seconds a shutdown gives the connections to close.
    shutdown_wait: float = DEFAULT_SHUTDOWN_WAIT
    #: The room every JOIN enters (``--default-room``).
    default_room: str = DEFAULT_ROOM
    #: Who may create a room by entering it: ``anyone``, ``admins`` or
    #: ``nobody`` (``--create-rooms``).
    create_rooms: str = CreatePolicy.ANYONE.value


@dataclass
class NodeContext:
    """Everything a node works with, built before it (see :meth:`alone`).

    ``store`` is open already; ``portal`` (see ``muca.server.auth``) turns
    password checks on; ``outbox`` is the fan-out written at the end of each
    reactor turn, which the bus may use to store a turn's messages first."""

    clock: IReactorTime
    bus: Bus
    outbox: Outbox
    config: NodeConfig = field(default_factory=NodeConfig)
    store: MessageStore | None = None
    portal: Portal | None = None
    #: Totals for /metrics.
    counters: Counters = field(default_factory=Counters)
    #: The accounts of ``--auth db`` (``muca.accounts.desk.Accounts``), or
    #: None.
    accounts: Any = None

    @classmethod
    def alone(
        cls,
        clock: IReactorTime,
        config: NodeConfig | None = None,
        store: MessageStore | None = None,
        portal: Portal | None = None,
    ) -> NodeContext:
        """The context of a server that runs alone: a :class:`LocalBus`
        whose ids go on from the (opened) store's last one, storing each
        turn's messages just before the turn's fan-out is written."""
        outbox = Outbox(clock)
        bus = LocalBus(clock, store=store, at_turn_end=outbox.at_flush)
        return cls(clock, bus, outbox, config or NodeConfig(), store, portal)
