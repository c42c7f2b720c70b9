"""irssi, a real IRC client nobody here wrote, driven in tmux (``send-keys``,
``capture-pane``) against a real ``twistd -n muca --irc``, talking both
ways with a ``ChatClient``: #general, private messages, a second channel,
quit. Every wait is bounded."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from tests.support.client import RecordingObserver, wait_until
from tests.support.twistd import Twistd, fresh_directory, start_twistd

#: Seconds irssi may take to show something.
SCREEN_WAIT = 15.0

IRSSI_CONFIG = """\
settings = {
  core = { real_name = "Alice A"; user_name = "alice"; nick = "alice"; };
};
"""


class IrssiDriver(TestCase):
    """A server and a tmux to run irssi in (the tests are its subclasses')."""

    timeout = 120
    #: The server's options besides its listeners.
    options: tuple[str, ...] = ()

    async def setUp(self) -> None:
        self.twistd: Twistd = await start_twistd(
            self, "--irc", "tcp:0:interface=127.0.0.1", *self.options
        )
        match = await self.twistd.process.wait_for(r"muca: IRC on 127\.0\.0\.1:(\d+)")
        self.irc_port = int(match.group(1))
        self.home = Path(fresh_directory(self))
        (self.home / "config").write_text(IRSSI_CONFIG)
        # A tmux server of this test's own, on a socket in its directory.
        self.socket = str(self.home / "tmux.socket")
        self.addCleanup(self.tmux, "kill-server")

    async def tmux(self, *args: str) -> str:
        env = {**os.environ, "LANG": "C.UTF-8", "TERM": "xterm"}
        argv = ["-S", self.socket, "-f", "/dev/null", *args]
        out, err, code = await getProcessOutputAndValue("tmux", argv, env=env)
        if code != 0 and args != ("kill-server",):
            raise AssertionError(f"tmux {args}: {code} {err!r}")
        return out.decode("utf-8", "replace")

    async def keys(self, text: str) -> None:
        """Type a line into irssi."""
        await self.tmux("send-keys", "-t", "irc", "-l", text)
        await self.tmux("send-keys", "-t", "irc", "Enter")

    async def screen_shows(self, *texts: str) -> str:
        """Wait until one line of irssi's screen holds every one of ``texts``."""
        screen = ""
        for _ in range(int(SCREEN_WAIT / 0.1)):
            screen = await self.tmux("capture-pane", "-p", "-t", "irc")
            for line in screen.splitlines():
                if all(text in line for text in texts):
                    return line
            await deferLater(reactor, 0.1, lambda: None)
        raise AssertionError(f"irssi never showed {texts}:\n{screen}")


class IrssiTests(IrssiDriver):
    async def test_irssi_talks_with_a_muca_client(self) -> None:
        observer = RecordingObserver()
        mary = ChatClient(reactor, "Mary", "mary@hku.hk", observer, timeout=5.0)
        self.addCleanup(mary.leave)
        await mary.connect_tcp("127.0.0.1", self.twistd.port)
        await mary.join()
        irssi = f"irssi --home={self.home} -c 127.0.0.1 -p {self.irc_port} -n alice"
        await self.tmux(
            "new-session", "-d", "-s", "irc", "-x", "160", "-y", "40", irssi
        )
        await self.screen_shows("Welcome to the MUCA chat")
        await wait_until(
            lambda: "alice" in [p.uid for p in mary.peers], 10, "alice in the room"
        )
        await self.keys("/join #general")
        # Mary's broadcast shows in irssi's #general window.
        mary.send([], "hello irssi")
        await self.screen_shows("Mary", "hello irssi")
        # What alice types there reaches Mary as a broadcast.
        await self.keys("hi from irssi")
        message = await observer.next_of("message")
        self.assertEqual(
            (message.kind, message.sender_uid, message.text),
            ("ALL", "alice", "hi from irssi"),
        )
        # Private messages both ways.
        await self.keys("/msg Mary just for you")
        message = await observer.next_of("message", 2)
        self.assertEqual((message.kind, message.text), ("PRIVATE", "just for you"))
        mary.send(["alice"], "private answer")
        await self.keys("/window goto Mary")
        await self.screen_shows("Mary", "private answer")
        # A second channel.
        await self.keys("/join #dev")
        await self.screen_shows("alice", "has joined #dev")
        await mary.enter("dev")
        mary.send([], "talk in dev", room="dev")
        await self.screen_shows("Mary", "talk in dev")
        await self.keys("over in dev")
        message = await observer.next_of("message", 3)
        self.assertEqual((message.room, message.text), ("dev", "over in dev"))
        # Quit: alice leaves the room.
        await self.keys("/quit")
        await wait_until(
            lambda: "alice" not in [p.uid for p in mary.peers], 10, "alice gone"
        )


class IrssiSaslTests(IrssiDriver):
    """irssi's own SASL PLAIN on a server with ``--auth``."""

    options = ("--auth", "memory:alice@hku.hk:sesame:mary@hku.hk:pw")

    async def test_sasl_plain(self) -> None:
        observer = RecordingObserver()
        mary = ChatClient(reactor, "Mary", "mary@hku.hk", observer, timeout=5.0)
        self.addCleanup(mary.leave)
        await mary.connect_tcp("127.0.0.1", self.twistd.port)
        await mary.join("pw")
        await self.tmux(
            "new-session",
            "-d",
            "-s",
            "irc",
            "-x",
            "160",
            "-y",
            "40",
            f"irssi --home={self.home}",
        )
        await self.screen_shows("Irssi v")
        await self.keys(
            "/network add -sasl_mechanism plain -sasl_username alice@hku.hk"
            " -sasl_password sesame muca"
        )
        await self.screen_shows("Network muca saved")
        await self.keys(f"/connect -network muca 127.0.0.1 {self.irc_port}")
        await self.screen_shows("Welcome to the MUCA chat")
        # The account is the user id; irssi's nick its nickname.
        await wait_until(
            lambda: (
                ("alice", "alice@hku.hk") in [(p.nickname, p.uid) for p in mary.peers]
            ),
            10,
            "alice@hku.hk in the room",
        )
        await self.keys("/msg Mary proved")
        message = await observer.next_of("message")
        self.assertEqual((message.sender_uid, message.text), ("alice@hku.hk", "proved"))
