"""Sending and showing messages in the Tk window, and the four-user screenshot."""

from __future__ import annotations

from muca.client.gui import pane_text
from tests.support.client import (
    HENRY,
    MARY,
    PETER,
    TONY,
)
from tests.support.gui import GuiTestCase, first_line, message_text


class SendTests(GuiTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        self.tony = await self.joined(TONY)
        self.mary = await self.joined(MARY)
        self.henry = await self.joined(HENRY)
        await self.until_in("Henry (henry@hku.hk)", self.tony.peer_list)

    async def test_send_before_join_is_an_error(self) -> None:
        peter = self.window(PETER)
        self.type_into(peter, "Tony", "hello")
        peter.send_button.invoke()
        line, tags = first_line(peter.console)
        self.assertIn("JOIN the chat room before sending", line)
        self.assertIn("error", tags)

    async def test_empty_to_or_message_is_an_error(self) -> None:
        self.type_into(self.tony, "", "hello")
        self.assertFalse(self.tony.do_send())
        self.assertIn("TO is empty", first_line(self.tony.console)[0])
        self.type_into(self.tony, "Mary", "  \n ")
        self.assertFalse(self.tony.do_send())
        self.assertIn("the message is empty", first_line(self.tony.console)[0])
        self.assertEqual(message_text(self.tony.messages), "")

    async def test_all_is_a_broadcast_shown_blue_and_right_aligned(self) -> None:
        self.type_into(self.tony, "ALL", "hello everyone")
        self.tony.send_button.invoke()
        self.assertEqual(
            first_line(self.tony.messages), ("[To: ALL] hello everyone", ("own",))
        )
        for window in (self.mary, self.henry):
            await self.until_in("hello everyone", window.messages)
            self.assertEqual(
                first_line(window.messages),
                ("[From: Tony] hello everyone", ("broadcast",)),
            )
        pane = self.mary.messages
        self.assertEqual(pane.tag_cget("broadcast", "foreground"), "blue")
        self.assertEqual(pane.tag_cget("broadcast", "justify"), "right")
        self.assertEqual(pane.tag_cget("own", "foreground"), "black")
        self.assertEqual(pane.tag_cget("own", "justify"), "left")
        self.assertEqual(self.tony.message_entry.get("1.0", "end-1c"), "")

    async def test_lowercase_all_is_a_nickname_not_a_broadcast(self) -> None:
        self.type_into(self.tony, "all", "hello?")
        self.assertFalse(self.tony.do_send())
        self.assertIn("all is not in the chat room", first_line(self.tony.console)[0])

    async def test_private_message_is_red_and_reaches_only_its_recipient(self) -> None:
        self.type_into(self.tony, "Mary", "just you")
        self.tony.send_button.invoke()
        self.assertEqual(first_line(self.tony.messages)[0], "[To: Mary] just you")
        await self.until_in("just you", self.mary.messages)
        self.assertEqual(
            first_line(self.mary.messages), ("[From: Tony] just you", ("private",))
        )
        self.assertEqual(self.mary.messages.tag_cget("private", "foreground"), "red")
        self.assertEqual(self.mary.messages.tag_cget("private", "justify"), "right")
        # Henry gets Tony's next message, and nothing before it.
        self.type_into(self.tony, "Henry", "and you")
        self.assertTrue(self.tony.do_send())
        await self.until_in("and you", self.henry.messages)
        self.assertEqual(message_text(self.henry.messages), "[From: Tony] and you\n")

    async def test_group_message_is_green_with_either_separator(self) -> None:
        for to, text in (("Mary, Henry", "first"), ("Henry,Mary", "second")):
            self.type_into(self.tony, to, text)
            self.assertTrue(self.tony.do_send())
        self.assertEqual(first_line(self.tony.messages)[0], "[To: Henry, Mary] second")
        for window in (self.mary, self.henry):
            await self.until_in("second", window.messages)
            self.assertEqual(
                message_text(window.messages),
                "[From: Tony] second\n[From: Tony] first\n",
            )
            self.assertEqual(first_line(window.messages)[1], ("group",))
        self.assertEqual(self.mary.messages.tag_cget("group", "foreground"), "#008000")

    async def test_private_to_self_is_an_error_and_nothing_is_sent(self) -> None:
        self.type_into(self.tony, "Tony", "me, myself")
        self.assertFalse(self.tony.do_send())
        line, tags = first_line(self.tony.console)
        self.assertIn("cannot send a private message to yourself", line)
        self.assertIn("error", tags)
        self.assertEqual(message_text(self.tony.messages), "")
        self.assertEqual(self.tony.message_entry.get("1.0", "end-1c"), "me, myself")

    async def test_private_to_unknown_nickname_is_an_error_and_nothing_sent(
        self,
    ) -> None:
        self.type_into(self.tony, "Zoe", "anyone?")
        self.assertFalse(self.tony.do_send())
        self.assertEqual(
            first_line(self.tony.console)[0],
            "[ERROR] Zoe is not in the chat room: nothing sent",
        )
        # Tony's next message is the first anyone gets.
        self.type_into(self.tony, "ALL", "anyone else?")
        self.assertTrue(self.tony.do_send())
        for window in (self.mary, self.henry):
            await self.until_in("anyone else?", window.messages)
            self.assertEqual(
                message_text(window.messages), "[From: Tony] anyone else?\n"
            )
        self.assertEqual(message_text(self.tony.messages), "[To: ALL] anyone else?\n")

    async def test_group_drops_self_and_unknown_names_and_sends_the_rest(
        self,
    ) -> None:
        self.type_into(self.tony, "Mary, Tony, Zoe, Henry", "to the rest")
        self.assertTrue(self.tony.do_send())
        self.assertEqual(
            first_line(self.tony.console),
            (
                "note: you are not sent your own message; Zoe is not in the room;"
                " sent to Mary, Henry as GROUP",
                ("note",),
            ),
        )
        self.assertNotIn("[ERROR]", pane_text(self.tony.console))
        self.assertEqual(
            first_line(self.tony.messages)[0], "[To: Mary, Henry] to the rest"
        )
        for window in (self.mary, self.henry):
            await self.until_in("[From: Tony] to the rest", window.messages)
            self.assertEqual(first_line(window.messages)[1], ("group",))

    async def test_unknown_name_left_out_of_two_is_a_note_saying_what_was_sent(
        self,
    ) -> None:
        self.type_into(self.tony, "Mary, Bob", "are you there?")
        self.assertTrue(self.tony.do_send())
        self.assertEqual(
            first_line(self.tony.console),
            ("note: Bob is not in the room; sent to Mary as PRIVATE", ("note",)),
        )
        await self.until_in("[From: Tony] are you there?", self.mary.messages)
        self.assertEqual(first_line(self.mary.messages)[1], ("private",))

    async def test_group_of_only_unknown_names_sends_nothing(self) -> None:
        self.type_into(self.tony, "Zoe, Tony, Bob", "nobody")
        self.assertFalse(self.tony.do_send())
        self.assertEqual(
            first_line(self.tony.console)[0],
            "[ERROR] Zoe, Bob are not in the chat room: nothing sent",
        )
        self.assertEqual(message_text(self.tony.messages), "")

    async def test_message_too_long_is_refused_and_kept_in_the_box(self) -> None:
        text = "x" * 72_000
        self.type_into(self.tony, "Mary", text)
        self.assertFalse(self.tony.do_send())
        overhead = len(
            '{"CMD":"SEND","MSG":"","TO":["mary@hku.hk"],"FROM":"Tony@hku.hk"}'
        )
        self.assertEqual(
            first_line(self.tony.console),
            (
                f"[ERROR] message too long: {72_000 + overhead:,} bytes, the server"
                " takes at most 65,536 (the whole SEND, in UTF-8); the first"
                f" {65536 - overhead:,} of its 72,000 characters fit",
                ("error",),
            ),
        )
        self.assertEqual(self.tony.message_entry.get("1.0", "end-1c"), text)
        self.assertEqual(message_text(self.tony.messages), "")
        self.assertTrue(self.tony.client.joined)
        self.type_into(self.tony, "Mary", "short one")
        self.assertTrue(self.tony.do_send())
        await self.until_in("short one", self.mary.messages)
        self.assertEqual(message_text(self.mary.messages), "[From: Tony] short one\n")

    async def test_enter_sends_and_shift_enter_inserts_a_newline(self) -> None:
        entry = self.tony.message_entry
        self.type_into(self.tony, "Mary", "line one")
        self.tony.master.deiconify()
        entry.focus_force()
        entry.mark_set("insert", "end")
        self.root.update()
        entry.event_generate("<Shift-Return>")
        entry.insert("insert", "line two")
        self.assertEqual(entry.get("1.0", "end-1c"), "line one\nline two")
        entry.event_generate("<Return>")
        self.assertEqual(entry.get("1.0", "end-1c"), "")
        await self.until_in("line two", self.mary.messages)
        self.assertEqual(
            message_text(self.mary.messages), "[From: Tony] line one\nline two\n"
        )

    async def test_newest_message_and_console_line_are_on_top(self) -> None:
        for text in ("one", "two", "three"):
            self.type_into(self.tony, "Mary", text)
            self.tony.do_send()
        await self.until_in("three", self.mary.messages)
        self.assertEqual(
            message_text(self.mary.messages).splitlines(),
            ["[From: Tony] three", "[From: Tony] two", "[From: Tony] one"],
        )
        self.type_into(self.tony, "", "x")
        self.tony.do_send()
        self.assertIn("TO is empty", pane_text(self.tony.console).splitlines()[0])

    async def test_server_error_is_shown_in_the_console(self) -> None:
        self.tony.client.send(["nobody@hku.hk"], "lost")
        await self.until_in("UNKNOWN_RECIPIENT", self.tony.console)
        line, tags = first_line(self.tony.console)
        self.assertIn("nobody@hku.hk", line)
        self.assertIn("error", tags)


class ConversationScreenshotTests(GuiTestCase):
    async def test_four_users_chat_and_the_screens_are_saved(self) -> None:
        places = ("+0+0", "+660+0", "+0+500", "+660+500")
        users = (TONY, PETER, HENRY, MARY)
        windows = {}
        for user, place in zip(users, places, strict=True):
            window = self.window(user, geometry=f"650x480{place}")
            await window.do_join()
            windows[user[0]] = window
        tony, peter, henry, mary = (windows[u[0]] for u in users)
        await self.until_in("Mary (mary@hku.hk)", tony.peer_list)
        script = (
            (tony, "ALL", "Hello everyone, Tony here!"),
            (mary, "Tony", "Hi Tony, where are you?"),
            (tony, "Mary", "In the library, come over."),
            (peter, "Mary, Henry", "Lunch at noon, you two?"),
            (henry, "Peter, Mary", "Count me in."),
            (mary, "ALL", "See you all at lunch."),
        )
        for window, to, text in script:
            self.type_into(window, to, text)
            self.assertTrue(window.do_send())
            # Each line is read before the next is written: the order is the
            # conversation's on every screen.
            readers = [w for w in windows.values() if w is not window]
            if to != "ALL":
                readers = [windows[name] for name in to.split(", ")]
            for reader in readers:
                await self.until_in(text, reader.messages)
        self.assertEqual(
            message_text(tony.messages).splitlines(),
            [
                "[From: Mary] See you all at lunch.",
                "[To: Mary] In the library, come over.",
                "[From: Mary] Hi Tony, where are you?",
                "[To: ALL] Hello everyone, Tony here!",
            ],
        )
        self.assertEqual(
            [mary.messages.tag_names(f"{n}.0") for n in range(1, 7)],
            [("own",), ("group",), ("group",), ("private",), ("own",), ("broadcast",)],
        )
        self.root.update()
        self.save_screenshot("four-users.png")
