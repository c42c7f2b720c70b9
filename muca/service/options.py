"""The ``twistd muca`` command line: every option, its default, its help
text and the checks on its value (before anything listens)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from twisted.cred import credentials, strcred
from twisted.internet import endpoints
from twisted.python import usage

import muca
from muca.cluster.heartbeat import HEARTBEAT_TTL, MIN_HEARTBEAT_TIMEOUT
from muca.protocol.messages import ProtocolError, room_name
from muca.protocol.wire import DEFAULT_MAX_FRAME
from muca.server.auth import make_checker
from muca.server.context import (
    DEFAULT_JOIN_TIMEOUT,
    DEFAULT_LIST_INTERVAL,
    DEFAULT_MAX_OUTBOUND,
)
from muca.server.limits import (
    DEFAULT_BURST,
    DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_RATE,
    default_max_outbound_total,
)
from muca.server.logins import DEFAULT_LOGIN_DELAY, DEFAULT_LOGIN_DELAY_MAX
from muca.server.replay import DEFAULT_HISTORY_REPLAY
from muca.server.rooms import DEFAULT_ROOM, CreatePolicy
from muca.service.listeners import with_backlog
from muca.store import StoreError, open_store
from muca.web.access import host_name, parse_networks
from muca.web.channel import DEFAULT_REQUEST_TIMEOUT
from twisted import copyright

DEFAULT_PORT = 40452
#: The web listener (browser client, WebSocket, health, metrics) by default.
DEFAULT_WEB = "tcp:40080"
DEFAULT_DB = "muca.db"
#: The history kept by default: a year of it, at most 1 GiB of database.
DEFAULT_HISTORY_DAYS = 365.0
DEFAULT_HISTORY_BYTES = 1 << 30
_BYTE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MAX_PORT = 65535


def physical_memory(meminfo: str = "/proc/meminfo") -> int | None:
    """The machine's memory in bytes (``MemTotal``), or ``None`` when it
    cannot be read; read once, when the options are made."""
    try:
        with open(meminfo, encoding="ascii") as lines:
            for line in lines:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise ValueError(f"{value!r} is not a positive whole number")
    return number


def _float_where(value: str, fits: Callable[[float], bool], what: str) -> float:
    """``value`` as a finite number that ``fits``, or a ValueError saying
    it is not ``what``."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")  # fits nothing
    if not fits(number) or number == float("inf"):
        raise ValueError(f"{value!r} is not {what}")
    return number


def _non_negative_float(value: str) -> float:
    return _float_where(value, lambda n: n >= 0, "a number of zero or more")


def _positive_float(value: str) -> float:
    return _float_where(value, lambda n: n > 0, "a positive number")


def _heartbeat_timeout(value: str) -> float:
    """Seconds, at least :data:`~muca.cluster.heartbeat.MIN_HEARTBEAT_TIMEOUT`."""
    return _float_where(
        value,
        lambda n: n >= MIN_HEARTBEAT_TIMEOUT,
        f"a number of seconds of at least {MIN_HEARTBEAT_TIMEOUT:g}",
    )


def _days_or_none(value: str) -> float:
    """Days, or 0 for ``0`` and ``none`` (kept forever)."""
    if value.strip().lower() == "none":
        return 0.0
    return _non_negative_float(value)


def _bytes_or_none(value: str) -> int:
    """A size in bytes, with an optional K, M, G or T (binary: 1K is 1024);
    0 for ``0`` and ``none`` (no bound)."""
    text = value.strip().upper().removesuffix("IB").removesuffix("B")
    if text == "NONE":
        return 0
    unit = text[-1:] if text[-1:] in _BYTE_UNITS else ""
    number = text[: len(text) - len(unit)]
    if not number.isdigit():
        raise ValueError(
            f"{value!r} is not a size in bytes (e.g. 1073741824, 500M, 1G, none)"
        )
    return int(number) * _BYTE_UNITS[unit]


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(f"{value!r} is not zero or a positive whole number")
    return number


def _room(value: str) -> str:
    """A room's name as the protocol compares it (lowered, no ``#``)."""
    try:
        return room_name(value, "")
    except ProtocolError as error:
        raise ValueError(error.reason) from None


def _create_policy(value: str) -> str:
    policies = [policy.value for policy in CreatePolicy]
    if value not in policies:
        raise ValueError(f"{value!r} is not one of {', '.join(policies)}")
    return value


def _registration(value: str) -> str:
    from muca.accounts.desk import Registration

    modes = [mode.value for mode in Registration]
    if value not in modes:
        raise ValueError(f"{value!r} is not one of {', '.join(modes)}")
    return value


def _named(option: str, coerce: Callable[[str], Any]) -> Callable[[str], Any]:
    """``coerce`` whose errors name the option: usage.Options says only
    "Parameter type enforcement failed" for a ValueError, so raise the
    UsageError here (it passes through)."""

    def checked(value: str) -> Any:
        try:
            return coerce(value)
        except ValueError as error:
            raise usage.UsageError(f"--{option}: {error}") from None

    return checked


def _port_number(option: str, value: str) -> int:
    """A TCP port number (0: any free one), or a UsageError naming ``option``."""
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= MAX_PORT:
        raise usage.UsageError(
            f"--{option}: {value!r} is not a port number (0-{MAX_PORT})"
        )
    return port


def as_description(option: str, value: str) -> str:
    """``value`` as an endpoint description: a plain port number (or what
    was meant as one: "abc", "-5") is ``tcp:PORT`` or a UsageError."""
    if value.lstrip("+-").isdigit() or ":" not in value:
        return f"tcp:{_port_number(option, value)}"
    return value


def check_listen(option: str, description: str) -> None:
    """Raise a UsageError naming ``option`` when ``description`` is no
    endpoint this server can listen on; nothing listens yet."""
    kind, _, rest = description.partition(":")
    if kind in ("tcp", "tcp6", "ssl"):
        fields = rest.split(":")
        named = [f.partition("=")[2] for f in fields if f.startswith("port=")]
        port = named[0] if named else fields[0]
        _port_number(option, port)
    try:
        # Only parses the description (and, for ssl:, reads the key and
        # certificate): the endpoint is never asked to listen.
        endpoints.serverFromString(None, description)
    except Exception as error:
        reason = getattr(error, "strerror", None) or error
        raise usage.UsageError(f"--{option}: {description}: {reason}") from None


class Options(usage.Options, strcred.AuthOptionMixin):
    """Options of ``twistd muca``."""

    supportedInterfaces = (credentials.IUsernamePassword,)  # noqa: N815

    synopsis = "[options]"
    longdesc = (
        "Run a MUCA chat server. With no --port or --listen it listens on "
        f"TCP port {DEFAULT_PORT} on every interface, and serves the browser "
        "client on http://HOST:40080/ (--web). With --auth (e.g. "
        "--auth memory:alice@hku.hk:secret or --auth file:users.txt, a file of "
        "uid:password lines, or --auth db, accounts in the --db database made "
        "with muca-admin or REGISTER) every JOIN needs a PASS that is right "
        "for its UID; without it no password is asked."
    )
    optParameters = [
        [
            "port",
            "p",
            None,
            "Port to listen on: a number, or an endpoint description as for --listen.",
        ],
        [
            "max-frame",
            None,
            DEFAULT_MAX_FRAME,
            "Longest frame (one JSON object) accepted, in bytes.",
            _named("max-frame", _positive_int),
        ],
        [
            "list-interval",
            None,
            DEFAULT_LIST_INTERVAL,
            "Seconds between two roster updates during a burst of joins and leaves;"
            " grows in proportion past 2,000 members.",
            _named("list-interval", _non_negative_float),
        ],
        [
            "max-outbound",
            None,
            DEFAULT_MAX_OUTBOUND,
            "Bytes that may wait for a client that does not read (past the "
            "transport's own buffer) before it is disconnected as a slow consumer.",
            _named("max-outbound", _positive_int),
        ],
        [
            "max-outbound-total",
            None,
            default_max_outbound_total(physical_memory()),
            "Bytes that may wait for all slow clients together (as for "
            "--max-outbound); past it the clients holding the most are "
            "disconnected first. Default: an eighth of the memory, at most 64 MiB.",
            _named("max-outbound-total", _positive_int),
        ],
        [
            "join-timeout",
            None,
            DEFAULT_JOIN_TIMEOUT,
            "Seconds a connection may stay without joining before it is "
            "closed; 0: no limit.",
            _named("join-timeout", _non_negative_float),
        ],
        [
            "rate-limit",
            None,
            DEFAULT_RATE,
            "Frames per second one connection may send on average (every frame "
            "counts, a refused one too); past it the server reads the rest more "
            "slowly (nothing is dropped); 0: no limit.",
            _named("rate-limit", _non_negative_float),
        ],
        [
            "rate-burst",
            None,
            DEFAULT_BURST,
            "Messages one connection may send at once before --rate-limit applies.",
            _named("rate-burst", _positive_int),
        ],
        [
            "login-delay",
            None,
            DEFAULT_LOGIN_DELAY,
            "With --auth: seconds after a refused login before the next wrong "
            "password is refused, doubled by each further failure (per "
            "connection, user id and address); a right password is never "
            "slowed; 0: failed logins are not slowed.",
            _named("login-delay", _non_negative_float),
        ],
        [
            "login-delay-max",
            None,
            DEFAULT_LOGIN_DELAY_MAX,
            "With --auth: the longest a refusal waits however many failed before it.",
            _named("login-delay-max", _non_negative_float),
        ],
        [
            "max-connections",
            None,
            None,
            "Open connections in total, chat and web; past it a JOIN gets ACK FAIL "
            "SERVER_FULL and the connection is closed; 0: no limit. Default: "
            "what the open-file limit allows (raised to its hard limit at start).",
            _named("max-connections", _non_negative_int),
        ],
        [
            "max-per-address",
            None,
            None,
            "Open connections from one IP address, chat and web; past it a JOIN "
            "gets ACK FAIL "
            f"SERVER_FULL and the connection is closed; 0: no limit. Default: "
            f"{DEFAULT_MAX_PER_ADDRESS}, loopback addresses exempt; a value "
            "given here holds for every address.",
            _named("max-per-address", _non_negative_int),
        ],
        [
            "web-request-timeout",
            None,
            DEFAULT_REQUEST_TIMEOUT,
            "Seconds an HTTP request to the web listener may take to arrive "
            "whole (its headers and body), from the connection's start or the "
            "previous response's end; past it the connection is closed. Bounds "
            "idle keep-alive connections too.",
            _named("web-request-timeout", _positive_float),
        ],
        # Cluster (see muca.cluster): one room over several servers.
        [
            "cluster",
            None,
            None,
            "Share one room with the other servers started with the same "
            "redis://host:port/db URL (a Redis server): one registry, one "
            "order of messages, each server's users leave when it dies. "
            "Requires --db none or a shared postgresql:// database.",
        ],
        [
            "heartbeat-timeout",
            None,
            HEARTBEAT_TTL,
            "With --cluster: seconds a server may go without a heartbeat (it "
            "beats every second) before the others drop it and its users; "
            f"at least {MIN_HEARTBEAT_TIMEOUT:g}.",
            _named("heartbeat-timeout", _heartbeat_timeout),
        ],
        [
            "max-members",
            None,
            0,
            "Users in the chat room; a JOIN past it gets ACK FAIL SERVER_FULL; "
            "0: no limit (but --max-connections).",
            _named("max-members", _non_negative_int),
        ],
        [
            "db",
            None,
            None,
            "Where the history is kept: an SQLite file (created if absent), "
            "a postgresql:// URL or libpq conninfo, or 'none' (no history). "
            f"Default: {DEFAULT_DB}; with --cluster, none (a --cluster needs "
            "a postgresql:// database every node shares, where each message "
            "is committed before any node delivers it).",
        ],
        [
            "register",
            None,
            "invite",
            "With --auth db: who may make an account with REGISTER: open "
            "(anyone), invite (with an invitation code from muca-admin invite "
            "create) or closed (only muca-admin user add).",
            _named("register", _registration),
        ],
        [
            "default-room",
            None,
            DEFAULT_ROOM,
            "The room every JOIN enters (a client without the rooms capability "
            "lives there alone): 1 to 32 of a-z, 0-9, - and _.",
            _named("default-room", _room),
        ],
        [
            "create-rooms",
            None,
            CreatePolicy.ANYONE.value,
            "Who may create a room by entering one that does not exist: "
            "anyone, admins or nobody.",
            _named("create-rooms", _create_policy),
        ],
        [
            "history-replay",
            None,
            DEFAULT_HISTORY_REPLAY,
            "Messages replayed to a client joining with the history capability.",
            _named("history-replay", _non_negative_int),
        ],
        [
            "history-days",
            None,
            DEFAULT_HISTORY_DAYS,
            "Delete messages older than this many days (in the background, "
            "every 10 minutes); 0 or none: kept however old.",
            _named("history-days", _days_or_none),
        ],
        [
            "history-bytes",
            None,
            DEFAULT_HISTORY_BYTES,
            "Delete the oldest messages while the database takes more than "
            "this (bytes, or with K, M, G: 500M, 1G; in the background, every "
            "10 minutes); 0 or none: no bound.",
            _named("history-bytes", _bytes_or_none),
        ],
        [
            "history-max",
            None,
            None,
            "Keep at most this many messages, deleting the oldest (in the "
            "background); default: no limit.",
            _named("history-max", _positive_int),
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        # The opt_ methods' docstrings as --help shows them: one paragraph
        # each, not the source's line breaks and indentation.
        self.docs = {
            name: " ".join(doc.split()) if isinstance(doc, str) else doc
            for name, doc in self.docs.items()
        }
        self["listen"] = []
        self["web"] = []
        self["irc"] = []
        self["web-origin"] = []
        self["web-host"] = []
        self["metrics-from"] = []

    def opt_listen(self, description: str) -> None:
        """Listen on an endpoint description, e.g. tcp:40452:interface=127.0.0.1,
        unix:/tmp/muca.sock or ssl:40453:privateKey=key.pem:certKey=cert.pem.
        Repeatable."""
        check_listen("listen", description)
        self["listen"].append(description)

    def opt_web(self, description: str) -> None:
        """Serve the browser client, the protocol over WebSocket (/ws),
        /healthz and /metrics on a port number or an endpoint description
        (ssl: for https and wss); "none": no web listener. Repeatable.
        Default: tcp:40080."""
        if description != "none":
            description = as_description("web", description)
            check_listen("web", description)
        self["web"].append(description)

    def opt_irc(self, description: str) -> None:
        """Let IRC clients in on a port number or an endpoint description
        (e.g. tcp:6667, ssl:6697:privateKey=key.pem:certKey=cert.pem): the
        rooms are channels. Repeatable. Default: none."""
        description = as_description("irc", description)
        check_listen("irc", description)
        self["irc"].append(description)

    def opt_web_host(self, name: str) -> None:
        """A name the web listener answers to (e.g. chat.example.org): pages
        loaded from it may use the WebSocket. Always allowed: the address a
        connection came in on, and localhost on a loopback one. Repeatable;
        the first one names the browser client's URL in the log."""
        try:
            self["web-host"].append(host_name(name))
        except ValueError as error:
            raise usage.UsageError(f"--web-host: {error}") from None

    def opt_web_origin(self, origin: str) -> None:
        """Let pages from this origin (e.g. https://chat.example.org, the
        origin of a reverse proxy) use the WebSocket, besides the web
        listener's own. Repeatable."""
        self["web-origin"].append(origin)

    def opt_metrics_from(self, networks: str) -> None:
        """Addresses or networks, comma separated (e.g. 10.0.0.0/8,::1), that
        may read /metrics; others get 403. Repeatable. Default: loopback
        (127.0.0.0/8 and ::1) only; given, it replaces the default."""
        try:
            self["metrics-from"] += parse_networks(networks)
        except ValueError as error:
            raise usage.UsageError(f"--metrics-from: {error}") from None

    def opt_auth(self, description: str) -> None:
        """Check every JOIN's PASS with this method: db (the accounts in the
        --db database, Argon2id hashes), memory:UID:PASSWORD[:UID:PASSWORD...]
        or file:PATH (a file of uid:password lines, checked at start);
        --help-auth lists the others. Repeatable: a user may be in any of
        them."""
        if description == "db":
            # Its checker needs the store, chosen in postOptions.
            self["auth-db"] = True
            return
        self.addChecker(make_checker(description))

    def opt_version(self) -> None:
        """Show MUCA's version (and Twisted's) and exit."""
        print(f"MUCA version {muca.__version__} (Twisted {copyright.version})")
        sys.exit(0)

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """Parse; after a mistake, twistd shows a short usage, not all options."""
        try:
            super().parseOptions(options)
        except usage.UsageError:
            self._failed = True
            raise

    def _account_checker(self) -> None:
        """``--auth db``: the accounts in the store, checked by a checker of
        their own among the others."""
        from muca.accounts.desk import AccountChecker, Accounts, Registration
        from muca.accounts.passwords import PasswordHashing

        if self["store"] is None:
            raise usage.UsageError(
                "--auth db keeps the accounts in the database: give --db a file"
                " or a postgresql:// URL, not none"
            )
        accounts = Accounts(
            self["store"], PasswordHashing(), Registration(self["register"])
        )
        self["accounts"] = accounts
        self.addChecker(AccountChecker(accounts))

    def getUsage(self, width: int | None = None) -> str:
        """All the options, or after a mistake where to find them."""
        if getattr(self, "_failed", False):
            return 'Run "twistd muca --help" for the options.'
        return super().getUsage(width)

    def postOptions(self) -> None:
        port = self["port"]
        if port is not None:
            port = as_description("port", port)
            check_listen("port", port)
            self["listen"].insert(0, port)
        if not self["listen"]:
            self["listen"].append(f"tcp:{DEFAULT_PORT}")
        self["listen"] = [with_backlog(d) for d in self["listen"]]
        if self["db"] is None:
            self["db"] = "none" if self["cluster"] is not None else DEFAULT_DB
        if self["cluster"] is not None:
            from muca.cluster.address import BadClusterURL, parse_cluster_url

            try:
                self["cluster"] = parse_cluster_url(self["cluster"])
            except BadClusterURL as error:
                raise usage.UsageError(f"--cluster: {error}") from None
        try:
            # Chosen (not opened) here: opening happens at the service's start.
            self["store"] = open_store(self["db"])
        except StoreError as error:
            raise usage.UsageError(f"--db: {error}") from None
        self["accounts"] = None
        if self.get("auth-db"):
            self._account_checker()
        if self["cluster"] is not None and self["store"] is not None:
            from muca.store.postgres import PostgresStore

            if not isinstance(self["store"], PostgresStore):
                raise usage.UsageError(
                    "--cluster needs a history every server shares: use --db "
                    "postgresql://... or --db none, not a local SQLite file"
                )
        web = self["web"] or [DEFAULT_WEB]
        if "none" in web:
            if len(web) > 1:
                raise usage.UsageError("--web none cannot go with other --web")
            web = []
        self["web"] = [with_backlog(d) for d in web]
        self["irc"] = [with_backlog(d) for d in self["irc"]]
