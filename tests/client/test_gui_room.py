"""The Tk window in a full room: the scrolled peer list, unread counts, whole lines."""

from __future__ import annotations

import tkinter as tk

from twisted.internet import reactor

from muca.client.client import ChatClient
from muca.client.config import ClientConfig
from muca.client.gui import ChatWindow, pane_text
from muca.client.observer import ReceivedMessage
from tests.support.client import MARY, TONY, settle
from tests.support.gui import GuiTestCase, first_line


class RoomOfFortyTests(GuiTestCase):
    async def fill_room(self, count: int) -> list[ChatClient]:
        """Join ``count`` users besides the windows (plain clients)."""
        clients = []
        for number in range(count):
            client = ChatClient(reactor, f"User{number:02}", f"user{number:02}@hku.hk")
            self.addCleanup(client.leave)
            await client.connect_tcp("127.0.0.1", self.port)
            await client.join()
            clients.append(client)
        return clients

    def click_name(self, window: ChatWindow, index: int) -> None:
        window.peer_list.see(index)
        self.root.update()
        x, y, _, height = window.peer_list.bbox(index)
        window.peer_list.event_generate("<ButtonPress-1>", x=x + 2, y=y + height // 2)
        window.peer_list.event_generate("<ButtonRelease-1>", x=x + 2, y=y + height // 2)

    async def test_forty_names_scroll_and_a_click_adds_a_name_to_to(self) -> None:
        tony = self.window(TONY, geometry="650x480+0+0")
        await tony.do_join()
        mary = self.window(MARY, geometry="650x480+660+0")
        await mary.do_join()
        await self.fill_room(38)
        await self.until(lambda: tony.peer_list.size() == 40, "40 names")
        self.root.update()
        lines = pane_text(tony.peer_list).splitlines()
        self.assertEqual(lines[:2], ["Tony (Tony@hku.hk)", "Mary (mary@hku.hk)"])
        self.assertEqual(lines[-1], "User37 (user37@hku.hk)")
        first, last = tony.peer_list.yview()
        self.assertLess(last - first, 1.0)  # not all 40 fit: it scrolls
        self.assertTrue(tony.peer_scroll.winfo_ismapped())
        self.click_name(tony, 1)
        self.assertEqual(tony.to_entry.get(), "Mary")
        self.click_name(tony, 39)
        self.assertEqual(tony.to_entry.get(), "Mary, User37")
        self.click_name(tony, 1)  # once is enough
        self.assertEqual(tony.to_entry.get(), "Mary, User37")
        self.click_name(tony, 0)
        self.assertEqual(
            first_line(tony.console),
            ("note: that is you: pick someone else, or ALL for everyone", ("note",)),
        )
        tony.to_entry.insert("end", ", Bob")
        tony.message_entry.insert("1.0", "Lunch at noon?")
        self.assertTrue(tony.do_send())
        self.assertEqual(
            first_line(tony.console)[0],
            "note: Bob is not in the room; sent to Mary, User37 as GROUP",
        )
        await self.until_in("Lunch at noon?", mary.messages)
        self.root.update()
        self.save_screenshot("room-of-40.png")


class UnreadTests(GuiTestCase):
    async def focus(self, window: ChatWindow) -> None:
        window.master.deiconify()
        await self.until(window.master.winfo_viewable, "the window on screen")
        window.message_entry.focus_force()
        await self.until(window.has_focus, "the focus")

    async def test_unread_messages_show_in_the_title_and_ring_once_per_burst(
        self,
    ) -> None:
        tony = await self.joined(TONY)
        mary = await self.joined(MARY)
        tony.burst_gap = 0.5
        await self.focus(mary)  # both on screen before Tony takes the focus
        await self.focus(tony)
        await settle()
        self.assertTrue(tony.has_focus())
        mary.client.send([TONY[1]], "seen at once")
        await self.until_in("seen at once", tony.messages)
        self.assertEqual((tony.master.title(), tony.bells), ("MUCA chat - Tony", 0))
        await self.focus(mary)
        await self.until(lambda: not tony.has_focus(), "focus moves to Mary")
        for text in ("one", "two", "three"):
            mary.client.send([TONY[1]], text)
        await self.until_in("three", tony.messages)
        self.assertEqual(tony.master.title(), "(3) MUCA chat - Tony")
        self.assertEqual(tony.bells, 1)
        await settle(40)  # longer than the burst gap: the next one rings again
        mary.client.send([TONY[1]], "four")
        await self.until_in("four", tony.messages)
        self.assertEqual((tony.master.title(), tony.bells), ("(4) MUCA chat - Tony", 2))
        await self.focus(tony)
        await self.until(lambda: tony.master.title() == "MUCA chat - Tony", "reset")
        self.assertEqual(tony.unread, 0)


class WholeLineTests(GuiTestCase):
    async def test_no_pane_shows_a_line_cut_in_half(self) -> None:
        config = ClientConfig(TONY[1], TONY[0], "127.0.0.1", self.port)
        for height in range(470, 490):
            top = tk.Toplevel(self.root)
            top.geometry(f"650x{height}+0+0")
            window = ChatWindow(top, config, reactor)
            for number in range(40):
                window.log(f"console line {number}")
                window.message_received(
                    ReceivedMessage("ALL", MARY[1], "Mary", f"message {number}")
                )
            self.root.update()
            for pane in (window.console, window.messages):
                self.assertEqual(_cut_lines(pane), [], f"height {height}")
            top.destroy()


def _cut_lines(pane: tk.Text) -> list[int]:
    """The lines of ``pane`` shown only in part (Tk clips their height)."""
    last = int(pane.index("end").split(".")[0])
    shown = [(line, pane.dlineinfo(f"{line}.0")) for line in range(1, last + 1)]
    heights = [info[3] for _, info in shown if info is not None]
    return [line for line, info in shown if info is not None and info[3] < max(heights)]
