"""The ``--irc`` listener's factory: every connection an
:class:`~muca.irc.peer.IrcPeer` of the node's sessions."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress, IListeningPort
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from muca.irc.peer import IrcPeer
from muca.server.addresses import describe_address

# The "IRC on" line is the service's, as the other listeners' lines are.
log = Logger(namespace="muca.service.tap")


class IrcListener(ServerFactory):
    """Builds the IRC peer of each accepted connection, on ``node``."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def buildProtocol(self, addr: IAddress) -> IrcPeer:  # noqa: N802
        """An IRC client of the node (its ``factory``)."""
        return IrcPeer(self.node)


def announce(port: IListeningPort) -> None:
    """Log where an IRC listener listens: ``muca: IRC on HOST:PORT``."""
    log.info("muca: IRC on {where}", where=describe_address(port.getHost()))
