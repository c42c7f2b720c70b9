"""``twistd muca``: the chat service built from the command line's options
(see ``muca.service.options``); twistd's plugin finds ``Options`` and
``makeService`` here."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from twisted.application import service, strports
from twisted.application.internet import StreamServerEndpointService
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from muca.accounts.watch import AccountWatch
from muca.server.auth import make_portal
from muca.server.context import NodeConfig, NodeContext
from muca.server.limits import DEFAULT_MAX_PER_ADDRESS, default_max_connections
from muca.server.node import ChatFactory
from muca.server.output import Outbox
from muca.server.wrong_port import BrowserClient
from muca.service.listeners import AnnouncedEndpoint, raise_descriptor_limit
from muca.service.options import Options
from muca.store import MessageStore, StoreError

if TYPE_CHECKING:
    from muca.cluster.redisbus import RedisBus

__all__ = ["ChatService", "Options", "makeService"]

log = Logger()

# Seconds between two prunings of the history (--history-days, --history-max,
# --history-bytes).
PRUNE_INTERVAL = 600.0


def _off_when_zero(value: float) -> float | None:
    return value or None


def _fail_to_start(reason: str) -> NoReturn:
    """End the program with one line on the real stderr, as command-line
    mistakes do (twistd has sent ``sys.stderr`` into its log by now); in
    the log instead when stderr goes nowhere (a daemon's)."""
    stderr = sys.__stderr__
    if stderr is None or _goes_nowhere(stderr.fileno()):
        log.error("muca: {reason}", reason=reason)
    else:
        stderr.write(f"muca: {reason}\n")
        stderr.flush()
    raise SystemExit(1)


def _goes_nowhere(fd: int) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(os.devnull))
    except OSError:
        return True


class ChatService(service.MultiService):
    """One chat server, started in one sequence: open the store, build the
    node (``muca.server.node.ChatFactory``) on it and its bus, then start
    the bus (a cluster's) and the listeners. A listener that cannot start
    ends the program with one readable line instead of a traceback.
    Stopping it closes the listeners, then every connection (see
    ``ChatFactory.close_all``), then the store."""

    #: The node, once built (privilegedStartService).
    factory: ChatFactory

    def __init__(
        self,
        reactor: IReactorTime,
        config: NodeConfig,
        store: MessageStore | None = None,
        portal: Portal | None = None,
        bus: RedisBus | None = None,
        history_days: float | None = None,
        history_max: int | None = None,
        history_bytes: int | None = None,
        accounts: Any = None,
    ) -> None:
        """``bus``: a cluster's (None: the server runs alone, on a
        ``LocalBus``); ``store``: not opened yet; ``accounts``: those of
        ``--auth db`` (``muca.accounts.desk.Accounts``) in that store."""
        super().__init__()
        self.reactor = reactor
        self.config = config
        self.store = store
        self.portal = portal
        self.bus = bus
        if bus is not None:
            # First started, last stopped: the listeners open on a live bus.
            bus.setServiceParent(self)
        self.history_days = history_days
        self.history_max = history_max
        self.history_bytes = history_bytes
        self.accounts = accounts
        self._watch: AccountWatch | None = None
        self._pruning: LoopingCall | None = None
        #: Given the node once it is built: chat listeners serve it, web
        #: listeners a site built on it.
        self._servers: list[tuple[StreamServerEndpointService, Callable[..., Any]]]
        self._servers = []

    def listen(
        self,
        description: str,
        server: Callable[[ChatFactory], ServerFactory],
        listening: Callable[[IListeningPort], None] | None = None,
    ) -> None:
        """Listen on ``description`` with the factory ``server`` builds from
        the node; call ``listening`` once it listens."""
        listener = strports.service(description, None)
        listener.endpoint = AnnouncedEndpoint(listener.endpoint, listening)
        listener.setServiceParent(self)
        self._servers.append((listener, server))

    def privilegedStartService(self) -> None:
        store = self.store
        if store is not None:
            # Before anything listens: nobody is served yet, so a blocking
            # open costs nothing, and a database that cannot be used ends
            # the program with one line.
            try:
                store.open_blocking()
            except StoreError as error:
                _fail_to_start(str(error))
        self.factory = ChatFactory(self._context(store))
        for listener, server in self._servers:
            listener.factory = server(self.factory)
        try:
            super().privilegedStartService()
        except CannotListenError as error:
            if store is not None:
                # Its thread would keep the process from exiting.
                store.close_blocking()
            where = f"port {error.port}" if error.port else "the address given"
            reason = getattr(error.socketError, "strerror", None) or error.socketError
            _fail_to_start(f"cannot listen on {where}: {reason}")

    def _context(self, store: MessageStore | None) -> NodeContext:
        """The node's context: alone, a ``LocalBus`` on the opened store;
        in a cluster, the Redis bus."""
        clock, config, portal = self.reactor, self.config, self.portal
        if self.bus is None:
            context = NodeContext.alone(clock, config, store, portal)
        else:
            context = NodeContext(clock, self.bus, Outbox(clock), config, store, portal)
        context.accounts = self.accounts
        return context

    def startService(self) -> None:
        super().startService()
        if self.accounts is not None:
            # muca-admin's changes (a disabled account, a role) reach the
            # joined users within seconds.
            self._watch = AccountWatch(self.factory, self.accounts)
            self._watch.start()
        store = self.store
        if store is not None and (
            self.history_days or self.history_max or self.history_bytes
        ):
            self._pruning = LoopingCall(self._prune, store)
            self._pruning.clock = self.factory.clock
            self._pruning.start(PRUNE_INTERVAL, now=True)

    def _prune(self, store: MessageStore) -> Deferred[None]:
        now_ms = int(self.factory.clock.seconds() * 1000)
        pruning = store.prune(
            self.history_days or None,
            self.history_max,
            now_ms,
            self.history_bytes or None,
        )

        def pruned(count: int) -> None:
            if count:
                log.info("muca: pruned {count} old messages", count=count)

        def failed(failure: Any) -> None:
            # Retried at the next interval; the loop must not stop.
            log.error(
                "muca: pruning failed: {reason}", reason=failure.getErrorMessage()
            )

        return pruning.addCallbacks(pruned, failed)

    def stopService(self) -> Deferred[None]:
        if self._watch is not None:
            self._watch.stop()
        if self._pruning is not None and self._pruning.running:
            self._pruning.stop()
        # /healthz says 503 from now on, to a load balancer still connected.
        self.factory.stopping = True
        stopped = super().stopService()
        stopped.addCallback(lambda _: self.factory.close_all())
        store = self.store
        if store is not None:
            stopped.addCallback(lambda _: store.close())
        return stopped


def node_config(options: Options, descriptors: int) -> NodeConfig:
    """The node's limits, intervals and timeouts from the command line, in
    a process that may open ``descriptors`` files."""
    max_connections = options["max-connections"]
    if max_connections is None:
        max_connections = default_max_connections(descriptors)
    max_per_address = options["max-per-address"]
    exempt_loopback = max_per_address is None
    if max_per_address is None:
        max_per_address = DEFAULT_MAX_PER_ADDRESS
    return NodeConfig(
        max_frame=options["max-frame"],
        list_interval=options["list-interval"],
        capacity=options["max-members"] or None,
        max_outbound=options["max-outbound"],
        max_outbound_total=options["max-outbound-total"],
        join_timeout=_off_when_zero(options["join-timeout"]),
        rate=_off_when_zero(options["rate-limit"]),
        burst=options["rate-burst"],
        max_connections=max_connections or None,
        max_per_address=max_per_address or None,
        exempt_loopback=exempt_loopback,
        login_delay=_off_when_zero(options["login-delay"]),
        login_delay_max=options["login-delay-max"],
        history_replay=options["history-replay"],
        default_room=options["default-room"],
        create_rooms=options["create-rooms"],
    )


def makeService(options: Options) -> ChatService:
    """Build the chat service from parsed options: the file descriptor
    limit raised, the cluster's bus, the listeners; the store is opened and
    the node built when the service starts."""
    descriptors = raise_descriptor_limit()
    from twisted.internet import reactor

    store = options["store"]
    bus = None
    if options["cluster"] is not None:
        from muca.cluster.redisbus import JOIN_WAIT_FOR_REDIS, RedisBus

        bus = RedisBus(
            options["cluster"],
            reactor,
            capacity=options["max-members"] or None,
            # The history's own store (opened by ChatService) is the one the
            # bus writes to: every node reads what any node stored.
            database=None if store is None else store.conninfo,
            heartbeat_timeout=options["heartbeat-timeout"],
        )
        if options["join-timeout"]:
            # A join held for Redis must be answered within the connection's
            # own time to join.
            bus.join_wait = min(JOIN_WAIT_FOR_REDIS, options["join-timeout"] / 3)
    chat = ChatService(
        reactor,
        node_config(options, descriptors),
        store,
        make_portal(options.get("credCheckers", [])),
        bus,
        options["history-days"],
        options["history-max"],
        options["history-bytes"],
        options["accounts"],
    )
    for description in options["listen"]:
        chat.listen(description, lambda node: node)
    if options["web"]:
        # Imported only when used: the web listener needs twisted[websocket].
        from muca.web.gateway import make_site

        def site(node: ChatFactory) -> ServerFactory:
            return make_site(
                node,
                options["web-origin"],
                options["web-host"],
                options["metrics-from"],
                options["web-request-timeout"],
            )

        for description in options["web"]:
            chat.listen(
                description,
                site,
                _browser_client(chat, description, options["web-host"]),
            )
    if options["irc"]:
        from muca.irc.listener import IrcListener, announce

        for description in options["irc"]:
            chat.listen(description, IrcListener, announce)
    return chat


def _browser_client(
    chat: ChatService, description: str, names: list[str]
) -> Callable[[IListeningPort], None]:
    """What a web listener does once it listens: log its URL, and make it
    the one the chat port names (the first such listener)."""
    secure = description.split(":", 1)[0] == "ssl"

    def listening(port: IListeningPort) -> None:
        address = port.getHost()
        if getattr(address, "port", None) is None:
            return  # a UNIX socket: no URL a browser can open
        web = BrowserClient.of(
            secure, address.host, address.port, names[0] if names else None
        )
        log.info("muca: browser client on {url}", url=web.url())
        if chat.factory.browser_client is None:
            chat.factory.browser_client = web

    return listening
