"""Interop: a client that speaks exactly as the original MUCA client does
(``tests.support.OriginalClient``: ``json.dumps`` ASCII objects back to back
out, ``}{`` split in) against our server, over loopback TCP."""

from __future__ import annotations

import json

from twisted.trial.unittest import TestCase

from tests.support import (
    OKAY,
    OKAY_V2,
    OriginalClient,
    connect,
    join,
    join_all,
    roster,
    send,
    start_server,
)

TONY = ("Tony", "Tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
PETER = ("Peter", "peter@hku.hk")
TRICKY = 'a}{b {"CMD": "ACK"}{ "quoted" \\ back\\slash — ünïcödé 你好 😀 }'


class OriginalClientTests(TestCase):
    async def original(
        self, port: int, who: tuple[str, str], **dumps
    ) -> OriginalClient:
        """Connect an original client and join; its ACK and LIST are checked
        by the caller."""
        client = await connect(self, port, OriginalClient)
        client.send_json(join(*who), **dumps)
        return client

    async def test_join_gets_exactly_the_bytes_an_original_client_expects(self) -> None:
        port = await start_server(self)
        tony = await self.original(port, TONY)
        self.assertEqual(await tony.next_objects(2), [OKAY, roster(TONY)])
        self.assertEqual(
            bytes(tony.received),
            b'{"CMD": "ACK", "TYPE": "OKAY"}'
            b'{"CMD": "LIST", "DATA": [{"UN": "Tony", "UID": "Tony@hku.hk"}]}',
        )

    async def test_compact_json_from_an_original_client_is_understood(self) -> None:
        port = await start_server(self)
        tony = await self.original(port, TONY, separators=(",", ":"))
        self.assertEqual(await tony.next_objects(2), [OKAY, roster(TONY)])
        self.assertNotIn(b"\n", tony.received)

    async def test_lists_and_all_three_message_types_with_tricky_text(self) -> None:
        port = await start_server(self)
        tony, mary = await join_all(self, port, [TONY, MARY], OriginalClient)
        peter = await self.original(port, PETER, separators=(",", ":"))
        everyone = roster(TONY, MARY, PETER)
        self.assertEqual(await peter.next_objects(2), [OKAY, everyone])
        self.assertEqual(await tony.next_object(), everyone)
        self.assertEqual(await mary.next_object(), everyone)

        # Private, group and broadcast, sent back to back as an original
        # client sends them when the user is quick.
        mary.send_json(send(TRICKY + " p", [TONY[1]], MARY[1]))
        mary.send_json(send(TRICKY + " g", [TONY[1], PETER[1]], MARY[1]))
        mary.send_json(send(TRICKY + " a", [], MARY[1]))
        got = await tony.next_objects(3)
        self.assertEqual(
            [(o["CMD"], o["TYPE"], o["MSG"], o["FROM"]) for o in got],
            [
                ("MSG", "PRIVATE", TRICKY + " p", MARY[1]),
                ("MSG", "GROUP", TRICKY + " g", MARY[1]),
                ("MSG", "ALL", TRICKY + " a", MARY[1]),
            ],
        )
        got = await peter.next_objects(2)
        self.assertEqual([o["TYPE"] for o in got], ["GROUP", "ALL"])
        self.assertEqual({o["MSG"] for o in got}, {TRICKY + " g", TRICKY + " a"})

        # What reached the original clients is ASCII, unframed, and splits
        # on "}{" only between objects.
        for client in (tony, mary, peter):
            data = bytes(client.received)
            self.assertTrue(data.isascii())
            self.assertNotIn(b"\n", data)
            self.assertEqual(data.count(b"}{"), len(client.objects) - 1)
            self.assertEqual(client.pending_text, "")

    async def test_original_and_native_clients_understand_each_other(self) -> None:
        port = await start_server(self)
        tony = await self.original(port, TONY)
        self.assertEqual(await tony.next_objects(2), [OKAY, roster(TONY)])
        mary = await connect(self, port)
        mary.send_json(join(*MARY, V=2))
        self.assertEqual(await mary.next_objects(2), [OKAY_V2, roster(TONY, MARY)])
        self.assertEqual(await tony.next_object(), roster(TONY, MARY))
        mary.send_json(send(TRICKY, [TONY[1]], MARY[1]))
        self.assertEqual((await tony.next_object())["MSG"], TRICKY)
        tony.send_json(send(TRICKY, [], TONY[1]))
        self.assertEqual((await mary.next_object())["MSG"], TRICKY)
        # Native output is raw UTF-8, one object per line.
        self.assertIn(json.dumps(TRICKY, ensure_ascii=False).encode(), mary.received)
        self.assertTrue(mary.received.endswith(b"\n"))

    async def test_errors_reach_an_original_client_in_its_framing(self) -> None:
        port = await start_server(self)
        tony = await self.original(port, TONY)
        self.assertEqual(await tony.next_objects(2), [OKAY, roster(TONY)])
        tony.send_json(send("to myself", [TONY[1]], TONY[1]))
        tony.send_json({"CMD": "HELLO"})
        errors = await tony.next_objects(2)
        self.assertEqual([e["CODE"] for e in errors], ["NO_RECIPIENT", "BAD_COMMAND"])
        self.assertNotIn(b"\n", tony.received)

    async def test_leave_is_seen_by_original_clients(self) -> None:
        port = await start_server(self)
        tony, mary = await join_all(self, port, [TONY, MARY], OriginalClient)
        await mary.close()
        self.assertEqual(await tony.next_object(), roster(TONY))
