"""ChatClient.search against a real ``twistd -n muca`` process on SQLite:
the matches newest first with their rooms, senders, ids and times, ``more``
and ``before`` to page, a bad query raised as SearchRefused with the
server's reason, and the finds kept out of the observer's messages."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from muca.client import SearchRefused
from tests.support.client import HENRY, MARY, TONY, ClientTestMixin
from tests.support.twistd import fresh_directory, start_twistd


class ClientSearchTests(ClientTestMixin, TestCase):
    async def setUp(self) -> None:
        db = fresh_directory(self) + "/muca.db"
        self.server = await start_twistd(self, "--db", db)
        self.port = self.server.port

    async def test_search_through_a_real_server(self) -> None:
        mary, _ = await self.client(MARY, timeout=10)
        henry, henry_heard = await self.client(HENRY, timeout=10)
        said = [
            "the café opens at noon",
            "Cafe au lait?",
            "lunch at the CAFÉ",
            "東京タワーに行きました",
        ]
        for text in said:
            mary.send([], text)
        await henry_heard.next_of("message", len(said))  # delivered, so stored

        tony, seen = await self.client(TONY, timeout=10)
        result = await tony.search("cafe")
        self.assertEqual([m.text for m in result.messages], said[2::-1])
        self.assertFalse(result.more)
        first = result.messages[0]
        self.assertEqual(
            (first.sender_uid, first.sender_nickname, first.room, first.history),
            (MARY[1], MARY[0], "general", True),
        )
        self.assertIsNotNone(first.timestamp_ms)
        self.assertGreater(first.ident, result.messages[1].ident)

        page = await tony.search("café", limit=2)
        self.assertEqual(
            ([m.text for m in page.messages], page.more), (said[2:0:-1], True)
        )
        rest = await tony.search("café", limit=2, before=page.messages[-1].ident)
        self.assertEqual(
            ([m.text for m in rest.messages], rest.more), ([said[0]], False)
        )
        self.assertEqual(
            [m.text for m in (await tony.search("タワー")).messages], [said[3]]
        )
        self.assertEqual((await tony.search("cafe", sender=HENRY[1])).messages, ())

        with self.assertRaises(SearchRefused) as caught:
            await tony.search('"open')
        self.assertEqual(caught.exception.code, "BAD_QUERY")
        self.assertIn("quote", str(caught.exception))
        # Searching again after a refusal works; the finds never reached
        # the observer as messages.
        self.assertEqual(len((await tony.search("noon")).messages), 1)
        # The replay at its JOIN is all the observer got, and no error.
        await seen.next_of("message", len(said))
        self.assertEqual([m.text for m in seen.of("message")], said)
        self.assertEqual(seen.of("error"), [])
        del henry
