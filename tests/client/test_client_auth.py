"""Joining a server that asks for a password (``--auth``) with ChatClient."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from muca.protocol.messages import (
    AUTH_FAILED,
    JoinRefused,
    Peer,
)
from tests.support import start_server
from tests.support.client import (
    TONY,
    ClientTestMixin,
)


class AuthTests(ClientTestMixin, TestCase):
    async def setUp(self) -> None:
        self.port = await start_server(self, "--auth", "memory:Tony@hku.hk:open sesame")

    async def test_missing_or_wrong_password_fails_with_auth_failed(self) -> None:
        for password in (None, "open says me"):
            client, observer = await self.client(TONY, join=False)
            with self.assertRaises(JoinRefused) as raised:
                await client.join(password)
            self.assertEqual(raised.exception.code, AUTH_FAILED)
            self.assertEqual(observer.of("refused")[0][0], AUTH_FAILED)
            await client.leave()

    async def test_right_password_joins(self) -> None:
        client, observer = await self.client(TONY, join=False)
        await client.join("open sesame")
        self.assertTrue(client.joined)
        self.assertEqual(await observer.next_of("peers"), (Peer(*TONY),))
