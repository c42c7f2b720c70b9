"""Messages the server refuses, in the Tk window: struck out as not
delivered, their text back in the box; a real PostgreSQL stopped under the
server makes it refuse (STORE_UNAVAILABLE)."""

from __future__ import annotations

import tkinter as tk

import psycopg
from twisted.enterprise import adbapi

from muca.client.gui import pane_text
from tests.support import connect, join
from tests.support import postgres as pgsupport
from tests.support.client import HENRY, MARY, TONY
from tests.support.gui import GuiTestCase, first_line, message_text


def line_tags(pane: tk.Text, text: str) -> tuple[str, ...]:
    """The tags at the start of the pane's line holding ``text``."""
    index = pane.search(text, "1.0")
    if not index:
        raise AssertionError(f"{text!r} is not in the pane")
    return pane.tag_names(f"{index} linestart")


class StoreRefusalTests(GuiTestCase):
    async def setUp(self) -> None:
        self.database = pgsupport.private_server(self)
        self.server_args = ("--db", self.database.conninfo())
        await super().setUp()

    async def test_a_message_the_store_refuses_is_struck_out_and_back_in_the_box(
        self,
    ) -> None:
        tony = await self.joined(TONY, geometry="650x480+0+0")
        mary = await self.joined(MARY, geometry="650x480+660+0")
        await self.until_in("Mary (mary@hku.hk)", tony.peer_list)
        self.type_into(tony, "Mary", "this one is stored")
        self.assertTrue(tony.do_send())
        await self.until_in("this one is stored", mary.messages)
        pgsupport.stop(self.database)
        self.type_into(tony, "Mary", "this one cannot be")
        self.assertTrue(tony.do_send())
        self.assertEqual(tony.message_entry.get("1.0", "end-1c"), "")
        await self.until(
            lambda: "not delivered" in pane_text(tony.console), "the refusal"
        )
        line, tags = first_line(tony.console)
        self.assertTrue(
            line.startswith(
                "[ERROR] not delivered: the server says STORE_UNAVAILABLE: "
            ),
            line,
        )
        self.assertTrue(line.endswith("; the text is back in the message box"))
        self.assertEqual(tags, ("error",))
        self.assertEqual(
            message_text(tony.messages).splitlines(),
            [
                "[To: Mary] this one cannot be  (not delivered)",
                "[To: Mary] this one is stored",
            ],
        )
        self.assertIn("refused", line_tags(tony.messages, "this one cannot be"))
        self.assertNotIn("refused", line_tags(tony.messages, "this one is stored"))
        self.assertEqual(tony.message_entry.get("1.0", "end-1c"), "this one cannot be")
        # Someone joins after the refusal; once Mary sees it, she would have
        # got the refused message too. (He leaves: the screenshot shows two.)
        henry = await connect(self, self.port)
        henry.send_json(join(*HENRY))
        await self.until_in("Henry (henry@hku.hk)", mary.peer_list)
        self.assertNotIn("cannot be", pane_text(mary.messages))
        await henry.close()
        await self.until(lambda: "Henry" not in pane_text(mary.peer_list), "he left")
        self.root.update()
        self.save_screenshot("gui-refused.png")
        # adbapi logs the broken connection's failed rollback itself.
        self.flushLoggedErrors(psycopg.OperationalError, adbapi.ConnectionLost)


class ImmediateRefusalTests(GuiTestCase):
    async def test_a_message_to_someone_who_just_left_comes_back(self) -> None:
        tony = await self.joined(TONY)
        mary = await self.joined(MARY)
        await self.until_in("Mary (mary@hku.hk)", tony.peer_list)
        self.type_into(tony, "Mary", "are you still there?")
        # Mary leaves while Tony's window still lists her: the server finds
        # nobody to give it to.
        await mary.do_leave()
        self.assertTrue(tony.do_send())
        await self.until(
            lambda: "not delivered" in pane_text(tony.console), "the refusal"
        )
        self.assertIn("UNKNOWN_RECIPIENT", first_line(tony.console)[0])
        self.assertEqual(
            first_line(tony.messages)[0],
            "[To: Mary] are you still there?  (not delivered)",
        )
        self.assertEqual(
            tony.message_entry.get("1.0", "end-1c"), "are you still there?"
        )
