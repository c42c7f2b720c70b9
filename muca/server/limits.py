"""Limits that keep one client from hurting the others: a token bucket for
message floods (and for answers, paid by their size), a count of open
connections per source address, and the bytes held for all slow readers
together.

Plain Python: time comes from an ``IReactorTime`` given by the caller, and
nothing here touches a socket. The server (``muca.server.node``) applies them.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.interfaces import IReactorTime

DEFAULT_RATE = 20.0
DEFAULT_BURST = 50
DEFAULT_MAX_PER_ADDRESS = 100
# Descriptors kept back from --max-connections' default for listeners, logs,
# and the files a server opens (TLS keys, password files).
RESERVED_DESCRIPTORS = 64
#: --max-outbound-total by default: this share of the machine's memory...
OUTBOUND_TOTAL_SHARE = 8
#: ...but at most this many bytes.
OUTBOUND_TOTAL_CAP = 64 * 1024 * 1024
#: Bytes of an answer to a request (``HISTORY``, and any later one that
#: reads back) that cost one token of the rate limit, as one frame does:
#: asking is cheap, answering is not, so an answer is paid for by its size.
ANSWER_BYTES_PER_TOKEN = 1024
# Tokens a bucket may lack and still give one: float rounding of the clock.
_ROUNDING = 1e-9


def answer_tokens(size: int) -> float:
    """The tokens an answer of ``size`` bytes costs."""
    return size / ANSWER_BYTES_PER_TOKEN


def default_max_connections(descriptors: int) -> int:
    """The connections a process with ``descriptors`` open files can hold."""
    return max(1, descriptors - RESERVED_DESCRIPTORS)


def default_max_outbound_total(memory: int | None) -> int:
    """``--max-outbound-total`` on a machine with ``memory`` bytes of RAM
    (``None``: unknown): an eighth of it, at most 64 MiB."""
    if not memory:
        return OUTBOUND_TOTAL_CAP
    return max(1, min(memory // OUTBOUND_TOTAL_SHARE, OUTBOUND_TOTAL_CAP))


class OutboundTotal:
    """The bytes waiting for all connections together (each connection adds
    and takes back its own), and the cap on them (``None``: none)."""

    __slots__ = ("cap", "held")

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self.held = 0

    def add(self, count: int) -> bool:
        """``count`` more bytes wait (fewer when negative); True when the
        total is now over the cap."""
        self.held += count
        return self.cap is not None and self.held > self.cap


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8 and ::1 (also IPv4-mapped)."""
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class TokenBucket:
    """Allows ``rate`` events per second on average and ``burst`` at once.

    The bucket starts full. :meth:`take` is called once per event and says
    whether that event may go ahead; :meth:`wait` says when one may.
    """

    __slots__ = ("rate", "burst", "_clock", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: int, clock: IReactorTime) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and burst")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock.seconds()

    def take(self) -> bool:
        """Spend one token; False (and nothing spent) when the bucket is empty."""
        tokens = self._refill()
        # A token due now by the clock counts even when summing the clock's
        # float steps left it a hair short.
        if tokens >= 1.0 - _ROUNDING:
            self._tokens = max(tokens - 1.0, 0.0)
            return True
        return False

    def charge(self, tokens: float) -> None:
        """Spend ``tokens`` more, going into debt if need be: the next
        events wait until the bucket has earned them back."""
        self._tokens = self._refill() - tokens

    def wait(self) -> float:
        """Seconds until the bucket holds a token (0 when it holds one)."""
        return max(0.0, (1.0 - self._refill()) / self.rate)

    def _refill(self) -> float:
        now = self._clock.seconds()
        tokens = self._tokens + (now - self._stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self._stamp = now
        self._tokens = tokens
        return tokens


class ConnectionCounter:
    """Open connections, in total and per source address, against two caps.

    :meth:`admit` counts a connection in (or says why not); every admitted
    connection must be :meth:`release`-d exactly once when it closes. A cap
    of ``None`` is no cap. Connections without an IP address (e.g. UNIX
    sockets, ``address`` ``None``) count only towards the total. With
    ``exempt_loopback``, connections from this machine are not held to the
    per-address cap (bots and bridges run beside the server).
    """

    def __init__(
        self,
        max_total: int | None = None,
        max_per_address: int | None = None,
        exempt_loopback: bool = False,
    ) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.exempt_loopback = exempt_loopback
        self.total = 0
        self._by_address: dict[str, int] = {}

    def count(self, address: str | None) -> int:
        """Open connections from ``address``."""
        return self._by_address.get(address, 0) if address is not None else 0

    def admit(self, address: str | None) -> str | None:
        """Count a new connection in and return ``None``, or return why not."""
        if self.max_total is not None and self.total >= self.max_total:
            return "the server has too many connections; try again later"
        if address is not None:
            held = self._by_address.get(address, 0)
            if (
                self.max_per_address is not None
                and held >= self.max_per_address
                and not (self.exempt_loopback and is_loopback(address))
            ):
                return f"too many connections from {address}"
            self._by_address[address] = held + 1
        self.total += 1
        return None

    def release(self, address: str | None) -> None:
        """Count an admitted connection out."""
        self.total -= 1
        if address is not None:
            held = self._by_address[address] - 1
            if held:
                self._by_address[address] = held
            else:
                del self._by_address[address]
