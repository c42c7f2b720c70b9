"""IRC clients for the tests: in memory, to a MUCA node
(``tests.support.MemoryServer``), and over real TCP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from muca.irc.listener import IrcListener
from tests.support import TIMEOUT, MemoryServer, RecordingTransport


class IrcClient:
    """One in-memory IRC connection: lines in, lines out."""

    def __init__(self, server: MemoryServer, host: str = "127.0.0.1") -> None:
        self.server = server
        server._next_port += 1
        port = server._next_port
        self.protocol: Any = IrcListener(server.factory).buildProtocol(
            IPv4Address("TCP", host, port)
        )
        self.transport = RecordingTransport(port, host)
        self.protocol.makeConnection(self.transport)

    def send(self, *lines: str) -> None:
        """Each line, with its CRLF."""
        self.protocol.dataReceived(b"".join(line.encode() + b"\r\n" for line in lines))

    def take(self) -> list[str]:
        """End the reactor turn; the lines written since the last time."""
        self.server.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        text = data.decode("utf-8")
        assert text == "" or text.endswith("\r\n"), text
        return text.split("\r\n")[:-1]

    def register(self, nick: str, *extra: str) -> list[str]:
        """NICK and USER (after ``extra`` lines); the lines answered."""
        self.send(*extra, f"NICK {nick}", f"USER {nick.lower()} 0 * :{nick} Real")
        return self.take()

    def lose(self) -> None:
        """The connection closes."""
        self.protocol.connectionLost(Failure(ConnectionDone()))


def codes(lines: list[str]) -> list[str]:
    """The command or numeric of each line."""
    out = []
    for line in lines:
        words = line.split(" ")
        if words[0].startswith("@"):
            words = words[1:]
        out.append(words[1] if words[0].startswith(":") else words[0])
    return out


class IrcLineClient(Protocol):
    """A raw IRC client over real TCP: writes lines, keeps every line read."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._tail = b""
        self.closed: defer.Deferred[None] = defer.Deferred()
        self._read = 0

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        *complete, self._tail = (self._tail + data).split(b"\r\n")
        self.lines += [line.decode("utf-8") for line in complete]

    def connectionLost(self, reason: Failure = None) -> None:  # noqa: N802
        if not self.closed.called:
            self.closed.callback(None)

    def send(self, *lines: str) -> None:
        """Each line, with its CRLF."""
        self.transport.write(b"".join(line.encode() + b"\r\n" for line in lines))

    async def until(self, predicate: Callable[[str], bool], what: str) -> str:
        """The first line not read yet that ``predicate`` accepts (the
        lines before it are read too); fail after :data:`TIMEOUT` s."""
        for _ in range(int(TIMEOUT / 0.01)):
            for index in range(self._read, len(self.lines)):
                if predicate(self.lines[index]):
                    self._read = index + 1
                    return self.lines[index]
            await deferLater(reactor, 0.01, lambda: None)
        raise AssertionError(f"no line {what}; got {self.lines[self._read :]}")

    async def line_with(self, text: str) -> str:
        """The first unread line holding ``text``."""
        return await self.until(lambda line: text in line, repr(text))

    async def close(self) -> None:
        """Close the connection and wait until it is closed."""
        if not self.closed.called:
            self.transport.loseConnection()
        await self.closed


async def connect_irc(testcase: TestCase, port: int) -> IrcLineClient:
    """An :class:`IrcLineClient` connected to ``127.0.0.1:port``; the
    test's cleanup closes it."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)
    client = await connectProtocol(endpoint, IrcLineClient())
    testcase.addCleanup(client.close)
    return client
