"""Listening for ``twistd muca``: the open-file limit, the listen backlog,
and an endpoint that logs the address it listens on."""

from __future__ import annotations

import resource
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from zope.interface import implementer

from muca.server.addresses import describe_address

# The "listening on" line is the service's (muca.service.tap), as the
# README shows it.
log = Logger(namespace="muca.service.tap")

DEFAULT_BACKLOG = 1024


def raise_descriptor_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return it.

    Many systems start processes at a soft limit of 1,024 descriptors, far
    below what a room of thousands needs, while allowing much more.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def with_backlog(description: str) -> str:
    """Give a TCP or TLS listener a backlog of :data:`DEFAULT_BACKLOG` unless
    the description names one.

    Twisted's default of 50 pending connections makes a class of hundreds
    connecting at once wait for SYN retries (a second or more each).
    """
    kind = description.split(":", 1)[0]
    if kind in ("tcp", "tcp6", "ssl") and "backlog=" not in description:
        return f"{description}:backlog={DEFAULT_BACKLOG}"
    return description


@implementer(IStreamServerEndpoint)
class AnnouncedEndpoint:
    """An endpoint that logs where it listens once it does: with port 0 the
    operator learns which port the system gave."""

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        then: Callable[[IListeningPort], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._then = then

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        """Listen as the wrapped endpoint does, then log the address (and
        call ``then`` with the port)."""
        return self._endpoint.listen(factory).addCallback(self._announce)

    def _announce(self, port: IListeningPort) -> IListeningPort:
        log.info("muca: listening on {where}", where=describe_address(port.getHost()))
        if self._then is not None:
            self._then(port)
        return port
