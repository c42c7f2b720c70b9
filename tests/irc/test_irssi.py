"""irssi, a real IRC client nobody here wrote, driven in tmux (``send-keys``,
``capture-pane``) against a real ``twistd -n muca --irc``, talking both
ways with a ``ChatClient``: #general, private messages, a second channel,
quit. Every wait is bounded."""

from __future__ import annotations

from tests.irc.terminal import TerminalTestCase
from tests.support.client import wait_until

IRSSI_CONFIG = """\
settings = {
  core = { real_name = "Alice A"; user_name = "alice"; nick = "alice"; };
};
"""


class IrssiDriver(TerminalTestCase):
    """irssi's home, with its config."""

    async def setUp(self) -> None:
        await super().setUp()
        (self.home / "config").write_text(IRSSI_CONFIG)


class IrssiTests(IrssiDriver):
    async def test_irssi_talks_with_a_muca_client(self) -> None:
        mary, observer = await self.muca_user("Mary", "mary@hku.hk")
        await self.start(
            f"irssi --home={self.home} -c 127.0.0.1 -p {self.irc_port} -n alice"
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
        mary, observer = await self.muca_user("Mary", "mary@hku.hk", "pw")
        await self.start(f"irssi --home={self.home}")
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
