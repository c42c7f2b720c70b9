"""``twistd muca``: command-line options and the service they build."""

from __future__ import annotations

import sys

from twisted.application import service, strports
from twisted.internet.error import CannotListenError
from twisted.python import usage

from muca.server import DEFAULT_LIST_INTERVAL, ChatFactory
from muca.wire import DEFAULT_MAX_FRAME

DEFAULT_PORT = 40452


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive whole number")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError("must be zero or more")
    return number


class Options(usage.Options):
    """Options of ``twistd muca``."""

    synopsis = "[options]"
    longdesc = (
        "Run a MUCA chat server. With no --port or --listen it listens on "
        f"TCP port {DEFAULT_PORT} on every interface."
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
            _positive_int,
        ],
        [
            "list-interval",
            None,
            DEFAULT_LIST_INTERVAL,
            "Seconds between two roster updates during a burst of joins and leaves;"
            " grows in proportion past 2,000 members.",
            _non_negative_float,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """Listen on an endpoint description, e.g. tcp:40452:interface=127.0.0.1,
        unix:/tmp/muca.sock or ssl:40453:privateKey=key.pem:certKey=cert.pem.
        Repeatable."""
        self["listen"].append(description)

    def postOptions(self) -> None:
        port = self["port"]
        if port is not None:
            self["listen"].insert(0, f"tcp:{port}" if port.isdigit() else port)
        if not self["listen"]:
            self["listen"].append(f"tcp:{DEFAULT_PORT}")


class ChatService(service.MultiService):
    """The listeners of one chat server; a listener that cannot start ends
    the program with one readable line instead of a traceback."""

    def __init__(self, factory: ChatFactory) -> None:
        super().__init__()
        self.factory = factory

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as error:
            where = f"port {error.port}" if error.port else "the address given"
            reason = getattr(error.socketError, "strerror", None) or error.socketError
            sys.stderr.write(f"muca: cannot listen on {where}: {reason}\n")
            raise SystemExit(1) from None


def makeService(options: Options) -> ChatService:
    """Build the chat service from parsed options."""
    factory = ChatFactory(
        max_frame=options["max-frame"], list_interval=options["list-interval"]
    )
    chat = ChatService(factory)
    for description in options["listen"]:
        strports.service(description, factory).setServiceParent(chat)
    return chat
