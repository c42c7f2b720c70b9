"""``twistd muca``: the chat service built from the command line's options
(see ``muca.server.options``); twistd's plugin finds ``Options`` and
``makeService`` here."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from twisted.application import service, strports
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from muca.server.auth import make_portal
from muca.server.limits import DEFAULT_MAX_PER_ADDRESS, default_max_connections
from muca.server.listeners import AnnouncedEndpoint, raise_descriptor_limit
from muca.server.node import DEFAULT_SHUTDOWN_WAIT, ChatFactory
from muca.server.options import Options
from muca.server.wrong_port import BrowserClient
from muca.store import MessageStore, StoreError

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
    """The listeners of one chat server; a listener that cannot start ends
    the program with one readable line instead of a traceback. Stopping it
    closes the listeners, then every connection (see
    ``ChatFactory.close_all``)."""

    def __init__(
        self,
        factory: ChatFactory,
        history_days: float | None = None,
        history_max: int | None = None,
        history_bytes: int | None = None,
    ) -> None:
        super().__init__()
        self.factory = factory
        self.history_days = history_days
        self.history_max = history_max
        self.history_bytes = history_bytes
        self._pruning: LoopingCall | None = None

    def privilegedStartService(self) -> None:
        store = self.factory.store
        if store is not None:
            # Before anything listens: nobody is served yet, so a blocking
            # open costs nothing, and a database that cannot be used ends
            # the program with one line.
            try:
                store.open_blocking()
            except StoreError as error:
                _fail_to_start(str(error))
            self.factory.store_opened()
        try:
            super().privilegedStartService()
        except CannotListenError as error:
            if store is not None:
                # Its thread would keep the process from exiting.
                store.close_blocking()
            where = f"port {error.port}" if error.port else "the address given"
            reason = getattr(error.socketError, "strerror", None) or error.socketError
            _fail_to_start(f"cannot listen on {where}: {reason}")

    def startService(self) -> None:
        super().startService()
        store = self.factory.store
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
        if self._pruning is not None and self._pruning.running:
            self._pruning.stop()
        # /healthz says 503 from now on, to a load balancer still connected.
        self.factory.stopping = True
        stopped = super().stopService()
        stopped.addCallback(lambda _: self.factory.close_all(DEFAULT_SHUTDOWN_WAIT))
        store = self.factory.store
        if store is not None:
            stopped.addCallback(lambda _: store.close())
        return stopped


def makeService(options: Options) -> ChatService:
    """Build the chat service from parsed options."""
    descriptors = raise_descriptor_limit()
    max_connections = options["max-connections"]
    if max_connections is None:
        max_connections = default_max_connections(descriptors)
    max_per_address = options["max-per-address"]
    exempt_loopback = max_per_address is None
    if max_per_address is None:
        max_per_address = DEFAULT_MAX_PER_ADDRESS
    bus = None
    if options["cluster"] is not None:
        from twisted.internet import reactor

        from muca.cluster.redisbus import JOIN_WAIT_FOR_REDIS, RedisBus

        store = options["store"]
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
    factory = ChatFactory(
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
        portal=make_portal(options.get("credCheckers", [])),
        login_delay=_off_when_zero(options["login-delay"]),
        login_delay_max=options["login-delay-max"],
        store=options["store"],
        history_replay=options["history-replay"],
        bus=bus,
    )
    chat = ChatService(
        factory,
        options["history-days"],
        options["history-max"],
        options["history-bytes"],
    )
    if bus is not None:
        # First started, last stopped: the listeners open on a live bus.
        bus.setServiceParent(chat)
    for description in options["listen"]:
        listener = strports.service(description, factory)
        listener.endpoint = AnnouncedEndpoint(listener.endpoint)
        listener.setServiceParent(chat)
    if options["web"]:
        # Imported only when used: the web listener needs twisted[websocket].
        from muca.web.gateway import make_site

        site = make_site(
            factory,
            options["web-origin"],
            options["web-host"],
            options["metrics-from"],
            options["web-request-timeout"],
        )
        for description in options["web"]:
            listener = strports.service(description, site)
            listener.endpoint = AnnouncedEndpoint(
                listener.endpoint,
                _browser_client(factory, description, options["web-host"]),
            )
            listener.setServiceParent(chat)
    return chat


def _browser_client(
    factory: ChatFactory, description: str, names: list[str]
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
        if factory.browser_client is None:
            factory.browser_client = web

    return listening
