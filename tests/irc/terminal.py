"""Terminal IRC clients nobody here wrote (irssi, WeeChat), driven in a
tmux of the test's own (``send-keys``, ``capture-pane``) against a real
``twistd -n muca --irc``; every wait bounded."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from tests.support.client import RecordingObserver
from tests.support.twistd import Twistd, fresh_directory, start_twistd

#: Seconds a client may take to show something.
SCREEN_WAIT = 15.0


class TerminalTestCase(TestCase):
    """A real ``twistd --irc`` and a tmux of the test's own to run a
    terminal IRC client in (the tests are its subclasses')."""

    timeout = 120
    #: The server's options besides its listeners.
    options: tuple[str, ...] = ()

    async def setUp(self) -> None:
        self.twistd: Twistd = await start_twistd(
            self, "--irc", "tcp:0:interface=127.0.0.1", *self.options
        )
        match = await self.twistd.process.wait_for(r"muca: IRC on 127\.0\.0\.1:(\d+)")
        self.irc_port = int(match.group(1))
        #: The client's home directory (and the tmux socket's).
        self.home = Path(fresh_directory(self))
        # A tmux server of this test's own, on a socket in its directory.
        self.socket = str(self.home / "tmux.socket")
        self.addCleanup(self.tmux, "kill-server")

    async def tmux(self, *args: str) -> str:
        """Run a tmux command on the test's tmux server; its output."""
        env = {**os.environ, "LANG": "C.UTF-8", "TERM": "xterm"}
        argv = ["-S", self.socket, "-f", "/dev/null", *args]
        out, err, code = await getProcessOutputAndValue("tmux", argv, env=env)
        if code != 0 and args != ("kill-server",):
            raise AssertionError(f"tmux {args}: {code} {err!r}")
        return out.decode("utf-8", "replace")

    async def start(self, command: str) -> None:
        """Run ``command`` (the client) in the test's tmux, 160 × 40."""
        await self.tmux(
            "new-session", "-d", "-s", "irc", "-x", "160", "-y", "40", command
        )

    async def muca_user(
        self, nickname: str, uid: str, password: str | None = None
    ) -> tuple[ChatClient, RecordingObserver]:
        """A ``ChatClient`` joined to the server (left at the test's end)."""
        observer = RecordingObserver()
        client = ChatClient(reactor, nickname, uid, observer, timeout=5.0)
        self.addCleanup(client.leave)
        await client.connect_tcp("127.0.0.1", self.twistd.port)
        await client.join(password)
        return client, observer

    async def keys(self, text: str) -> None:
        """Type a line into the client."""
        await self.tmux("send-keys", "-t", "irc", "-l", text)
        await self.tmux("send-keys", "-t", "irc", "Enter")

    async def screen_shows(self, *texts: str) -> str:
        """Wait until one line of the screen holds every one of ``texts``."""
        screen = ""
        for _ in range(int(SCREEN_WAIT / 0.1)):
            screen = await self.tmux("capture-pane", "-p", "-t", "irc")
            for line in screen.splitlines():
                if all(text in line for text in texts):
                    return line
            await deferLater(reactor, 0.1, lambda: None)
        raise AssertionError(f"the screen never showed {texts}:\n{screen}")
