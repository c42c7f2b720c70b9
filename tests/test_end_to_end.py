"""End-to-end tests over real loopback TCP against the ``twistd muca`` service."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.support import connect, join, roster, send, start_server

TONY = ("Tony", "Tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")


class SeedScenarioTests(TestCase):
    async def test_join_gets_ack_then_list(self) -> None:
        port = await start_server(self)
        tony = await connect(self, port)
        tony.send_json(join(*TONY))
        self.assertEqual(
            await tony.next_objects(2),
            [{"CMD": "ACK", "TYPE": "OKAY"}, roster(TONY)],
        )
        mary = await connect(self, port)
        mary.send_json(join(*MARY))
        self.assertEqual(
            await mary.next_objects(2),
            [{"CMD": "ACK", "TYPE": "OKAY"}, roster(TONY, MARY)],
        )
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))
        mary.send_json(send("hi", [TONY[1]], MARY[1]))
        msg = await tony.next_object()
        self.assertEqual(msg["MSG"], "hi")
