"""What the server counts while it runs, for ``/metrics``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Counters:
    """Totals since the server started; only ever increased."""

    #: ``SEND``s accepted for at least one recipient.
    accepted: int = 0
    #: ``MSG`` copies queued for recipients on this server.
    delivered: int = 0
    #: Bytes handed to the connections' transports.
    bytes_out: int = 0
    #: Connections dropped for not reading what was sent to them.
    slow_consumers: int = 0
