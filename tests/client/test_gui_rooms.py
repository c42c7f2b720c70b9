"""Rooms in the Tk window: ``/enter NAME`` and ``/exit NAME`` typed in the
message box, ALL reaching the room entered, the room on each line from a
room other than the default one, refusals in the console; and the screenshot."""

from __future__ import annotations

from muca.client.gui import pane_text
from tests.support.client import HENRY, MARY, TONY, settle
from tests.support.gui import GuiTestCase, first_line


class RoomsTests(GuiTestCase):
    async def test_a_room_entered_by_command_and_its_message_for_members(
        self,
    ) -> None:
        tony = await self.joined(TONY, geometry="+0+0")
        mary = await self.joined(MARY, geometry="+660+0")
        henry = await self.joined(HENRY, geometry="+0+500")
        await self.until_in("Henry (henry@hku.hk)", tony.peer_list)
        self.type_into(tony, "", "/enter #Dev")
        self.assertTrue(tony.do_send())
        await self.until_in("entered #dev", tony.console)
        self.assertEqual(tony.message_entry.get("1.0", "end-1c"), "")
        self.type_into(mary, "", "/join dev")
        mary.send_button.invoke()
        await self.until_in("entered #dev", mary.console)
        await self.until(lambda: len(tony.client.room_peers("dev")) == 2, "Mary in")
        self.assertIn(
            "messages to ALL go to #dev now; /exit dev leaves it",
            pane_text(tony.console),
        )

        self.type_into(tony, "ALL", "build is red")
        tony.send_button.invoke()
        self.assertEqual(
            first_line(tony.messages), ("[To: ALL in #dev] build is red", ("own",))
        )
        await self.until_in("build is red", mary.messages)
        self.assertEqual(
            first_line(mary.messages),
            ("[From: Tony in #dev] build is red", ("broadcast",)),
        )
        # Henry is in general only: he does not get it; general's lines are
        # as before rooms, and his window has no room list.
        self.type_into(henry, "ALL", "lunch?")
        henry.send_button.invoke()
        await self.until_in("lunch?", mary.messages)
        self.assertEqual(
            first_line(mary.messages), ("[From: Henry] lunch?", ("broadcast",))
        )
        await settle()
        self.assertNotIn("build is red", pane_text(henry.messages))
        self.assertFalse(henry.room_list.winfo_ismapped())
        # Tony's room list: both rooms, general's new message counted.
        await self.until_in("[1 new]", tony.room_list)
        self.assertTrue(tony.room_list.winfo_ismapped())
        self.assertEqual(pane_text(tony.room_list), "#general (3) [1 new]\n#dev (2)")

        # A refusal is one readable line in the console.
        self.type_into(henry, "", "/exit dev")
        henry.send_button.invoke()
        await self.until_in("cannot leave", henry.console)
        line, tags = first_line(henry.console)
        self.assertIn(
            "cannot leave the room: you are not in the room 'dev' (NOT_IN_ROOM)",
            line,
        )
        self.assertIn("error", tags)

        # Back to the default room, then out of #dev.
        self.type_into(tony, "", "/enter general")
        tony.send_button.invoke()
        self.assertIn("messages to ALL go to #general now", pane_text(tony.console))
        self.assertEqual(pane_text(tony.room_list), "#general (3)\n#dev (2)")
        self.type_into(mary, "", "/exit #dev")
        mary.send_button.invoke()
        await self.until_in("left #dev", mary.console)
        self.save_screenshot("gui-rooms.png")

    async def test_unread_counts_of_the_rooms_not_shown_and_a_bare_leave(
        self,
    ) -> None:
        tony = await self.joined(TONY, geometry="+0+0")
        mary = await self.joined(MARY, geometry="+660+0")
        henry = await self.joined(HENRY, geometry="+0+500")
        await self.until_in("Henry (henry@hku.hk)", tony.peer_list)
        for command in ("/join #dev", "/join #ops"):
            self.type_into(tony, "", command)
            self.assertTrue(tony.do_send())
        await self.until_in("entered #ops", tony.console)
        self.type_into(mary, "", "/join dev")
        mary.send_button.invoke()
        await self.until(lambda: len(tony.client.room_peers("dev")) == 2, "Mary in")

        # ALL goes to #ops: what is said in #dev and #general is counted.
        for text in ("deploy at 5", "deployed"):
            self.type_into(mary, "ALL", text)
            mary.send_button.invoke()
        self.type_into(henry, "ALL", "lunch?")
        henry.send_button.invoke()
        await self.until_in("[2 new]", tony.room_list)
        await self.until_in("[1 new]", tony.room_list)
        self.assertEqual(
            pane_text(tony.room_list),
            "#general (3) [1 new]\n#dev (2) [2 new]\n#ops (1)",
        )
        self.assertEqual(
            first_line(tony.messages), ("[From: Henry] lunch?", ("broadcast",))
        )
        self.save_screenshot("gui-rooms-unread.png")

        # Switched to: #dev's count is cleared, the others' stay.
        self.type_into(tony, "", "/join #dev")
        self.assertTrue(tony.do_send())
        self.assertIn("messages to ALL go to #dev now", pane_text(tony.console))
        self.assertEqual(
            pane_text(tony.room_list), "#general (3) [1 new]\n#dev (2)\n#ops (1)"
        )
        self.type_into(mary, "ALL", "thanks")
        mary.send_button.invoke()
        await self.until_in("thanks", tony.messages)
        self.assertEqual(
            pane_text(tony.room_list), "#general (3) [1 new]\n#dev (2)\n#ops (1)"
        )

        # /leave alone: out of the room ALL goes to, back to #general.
        self.type_into(tony, "", "/leave")
        self.assertTrue(tony.do_send())
        self.assertEqual(tony.message_entry.get("1.0", "end-1c"), "")
        await self.until_in("left #dev", tony.console)
        self.assertIn("messages to ALL go to #general now", pane_text(tony.console))
        await self.until_in("#dev (1) - enter", tony.room_list)
        self.assertEqual(
            pane_text(tony.room_list), "#general (3)\n#dev (1) - enter\n#ops (1)"
        )

        # Not a room name: one line in the console, nothing sent.
        self.type_into(tony, "", "/join #dév")
        self.assertFalse(tony.do_send())
        line, tags = first_line(tony.console)
        self.assertIn(
            "cannot enter the room: '#dév' is no room name: 1 to 32 characters"
            " of a-z, 0-9, - and _ (an optional # before it) (BAD_ROOM)",
            line,
        )
        self.assertIn("error", tags)
        self.assertEqual(tony.message_entry.get("1.0", "end-1c"), "/join #dév")
