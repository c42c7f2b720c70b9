"""The Tk window's ``/search words``: the matches listed in the console
under a line counting them (time, room, nickname, text), a bad query as
one error line, nothing sent as a message; on Xvfb."""

from __future__ import annotations

import os
import tempfile

from muca.client.gui import pane_text
from tests.support import connect, join, send
from tests.support.client import TONY
from tests.support.gui import GuiTestCase

DB = os.path.join(tempfile.mkdtemp(prefix="muca-gui-search-"), "search.db")
ALICE = ("Alice", "alice@hku.hk")


class SearchWindowTests(GuiTestCase):
    server_args = ("--db", DB)

    async def setUp(self) -> None:
        if os.path.exists(DB):
            os.remove(DB)
        await super().setUp()

    async def test_search_lists_the_matches_in_the_console(self) -> None:
        tony = await self.joined(TONY)
        alice = await connect(self, self.port)
        alice.send_json(join(*ALICE))
        await alice.next_objects(2)
        for text in ("the review is at ten", "Réview moved to 301", "lunch"):
            alice.send_json(send(text, [], ALICE[1]))
        await self.until_in("lunch", tony.messages)
        shown = pane_text(tony.messages)

        self.type_into(tony, "ALL", "/search review")
        self.assertTrue(tony.do_send())
        await self.until_in("search 'review': 2 found", tony.console)
        lines = pane_text(tony.console).splitlines()
        at = next(i for i, line in enumerate(lines) if "2 found" in line)
        self.assertTrue(
            lines[at + 1].endswith("#general Alice: Réview moved to 301"), lines
        )
        self.assertTrue(
            lines[at + 2].endswith("#general Alice: the review is at ten"), lines
        )
        # Typed box emptied, nothing sent as a message.
        self.assertEqual(tony.message_entry.get("1.0", "end-1c"), "")
        self.assertEqual(pane_text(tony.messages), shown)

        self.type_into(tony, "ALL", "/search nothing-here")
        tony.do_send()
        await self.until_in("search 'nothing-here': nothing found", tony.console)
        self.type_into(tony, "ALL", '/search "review')
        tony.do_send()
        await self.until_in("quote", tony.console)
        self.assertIn("(BAD_QUERY)", pane_text(tony.console).splitlines()[0])
        self.type_into(tony, "ALL", "/search   ")
        self.assertFalse(tony.do_send())
        self.assertIn("/search needs words", pane_text(tony.console).splitlines()[0])
