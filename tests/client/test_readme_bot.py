"""The README's bot, run as written against a real ``twistd -n muca``: what
another user in the room receives from it. And the client's public names,
importable from ``muca.client`` as the README says."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

import muca.client
from muca.client import client, errors, observer
from muca.protocol import messages
from tests.support import OKAY, RawClient, connect, join, msg, roster, send, strip_ts
from tests.support.readme import fenced_block
from tests.support.twistd import TwistdProcess, fresh_directory, start_twistd

MARY = ("Mary", "mary@hku.hk")
BOT = ("EchoBot", "echobot@hku.hk")


class PublicNamesTests(SynchronousTestCase):
    def test_the_client_api_imports_from_muca_client_and_its_modules(self) -> None:
        old_paths = {
            "ChatClient": client,
            "ChatObserver": observer,
            "ReceivedMessage": observer,
            "ClientError": errors,
            "NotConnected": errors,
            "ConnectFailed": errors,
            "ConnectionClosed": errors,
            "MessageTooLong": errors,
            "CertificateRefused": errors,
            "JoinRefused": messages,
        }
        for name, module in old_paths.items():
            self.assertIs(getattr(muca.client, name), getattr(module, name), name)
            self.assertIn(name, muca.client.__all__)
        # Every error the client library defines is exported.
        for name, value in vars(errors).items():
            if isinstance(value, type) and issubclass(value, errors.ClientError):
                self.assertIs(getattr(muca.client, name), value, name)


class ReadmeBotTests(TestCase):
    async def next_non_roster(self, mary: RawClient, expected_roster: Any) -> Any:
        """Mary's next object after the rosters she gets meanwhile, checking
        the last of those is ``expected_roster``."""
        last = None
        for _ in range(10):
            obj = await mary.next_object()
            if obj.get("CMD") != "LIST":
                self.assertEqual(last, expected_roster)
                return obj
            last = obj
        self.fail(f"only rosters; the last: {last}")

    async def test_the_bot_greets_answers_echo_and_leaves(self) -> None:
        server = await start_twistd(self, "--db", "none")
        mary = await connect(self, server.port)
        mary.send_json(join(*MARY))
        self.assertEqual(await mary.next_objects(2), [OKAY, roster(MARY)])

        folder = Path(fresh_directory(self))
        (folder / "echobot.py").write_text(fenced_block("from muca.client import"))
        bot = TwistdProcess()
        env = {**os.environ, "MUCA_PORT": str(server.port), "PYTHONUNBUFFERED": "1"}
        transport = reactor.spawnProcess(
            bot, sys.executable, [sys.executable, "echobot.py"], env, str(folder)
        )

        async def reap() -> None:
            if bot.reason is None:
                transport.signalProcess("KILL")
                await bot.ended()

        self.addCleanup(reap)
        greeting = await self.next_non_roster(mary, roster(MARY, BOT))
        self.assertEqual(
            strip_ts(greeting), msg("ALL", "Hello! Send me !echo TEXT", BOT[1])
        )
        mary.send_json(send("!echo hi there, bot", [BOT[1]], MARY[1]))
        answer = await mary.next_object()
        self.assertEqual(strip_ts(answer), msg("PRIVATE", "hi there, bot", BOT[1]))
        self.assertEqual(await mary.next_object(), roster(MARY))
        (ended,) = await bot.ended()
        self.assertEqual(ended.value.exitCode, 0, bot.output)
        self.assertEqual(bot.output, "")
