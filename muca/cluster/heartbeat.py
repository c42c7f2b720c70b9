"""A cluster node's heartbeat: how often every node beats, and how long one
may stay silent before the others drop it and its members (a module of its
own so that the command line can check ``--heartbeat-timeout`` without
importing the bus)."""

from __future__ import annotations

#: Seconds between a node's heartbeats.
HEARTBEAT_INTERVAL = 1.0
#: Seconds a node may go without a heartbeat before it counts as dead
#: (``--heartbeat-timeout``'s default).
HEARTBEAT_TTL = 5.0
#: The shortest timeout allowed: two beats, so that one late beat of a busy
#: node does not make it dead.
MIN_HEARTBEAT_TIMEOUT = 2.0 * HEARTBEAT_INTERVAL
#: No heartbeat from any node for this long: Redis was stopped, not a node.
STALL = 2.0
