"""WeeChat, a real IRC client nobody here wrote, driven in tmux against a
real ``twistd -n muca --irc``, talking both ways with a ``ChatClient``:
#general, private messages, a second channel, quit."""

from __future__ import annotations

from tests.irc.terminal import TerminalTestCase
from tests.support.client import wait_until


class WeeChatTests(TerminalTestCase):
    async def test_weechat_talks_with_a_muca_client(self) -> None:
        mary, observer = await self.muca_user("Mary", "mary@hku.hk")
        setup = "; ".join(
            [
                f"/server add muca 127.0.0.1/{self.irc_port}",
                "/set irc.server.muca.nicks bob",
                "/set irc.server.muca.username bob",
                "/connect muca",
            ]
        )
        await self.start(f"weechat --dir {self.home} -r '{setup}'")
        await wait_until(
            lambda: "bob" in [p.uid for p in mary.peers], 15, "bob in the room"
        )
        await self.keys("/buffer #general")
        mary.send([], "hello weechat")
        await self.screen_shows("Mary", "hello weechat")
        await self.keys("hi from weechat")
        message = await observer.next_of("message")
        self.assertEqual(
            (message.kind, message.sender_uid, message.text),
            ("ALL", "bob", "hi from weechat"),
        )
        await self.keys("/msg Mary a word alone")
        message = await observer.next_of("message", 2)
        self.assertEqual((message.kind, message.text), ("PRIVATE", "a word alone"))
        mary.send(["bob"], "private reply")
        await self.keys("/buffer Mary")
        await self.screen_shows("Mary", "private reply")
        await self.keys("/join #dev")
        await self.screen_shows("bob", "has joined #dev")
        await mary.enter("dev")
        mary.send([], "dev chatter", room="dev")
        await self.screen_shows("Mary", "dev chatter")
        await self.keys("answered in dev")
        message = await observer.next_of("message", 3)
        self.assertEqual((message.room, message.text), ("dev", "answered in dev"))
        await self.keys("/quit")
        await wait_until(
            lambda: "bob" not in [p.uid for p in mary.peers], 15, "bob gone"
        )
