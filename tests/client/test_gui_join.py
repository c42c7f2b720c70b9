"""The Tk window's layout and joining: real Tk windows on Xvfb, a real server."""

from __future__ import annotations

import time
import tkinter as tk

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

from muca.client.client import ChatClient
from muca.client.gui import ChatWindow, pane_text
from tests.support.client import (
    MARY,
    TONY,
    closed_port,
    listen_loopback,
)
from tests.support.gui import GuiTestCase, first_line
from tests.support.servers import RecordingRelay


class LayoutTests(GuiTestCase):
    async def test_top_bar_shows_the_config_values(self) -> None:
        window = self.window(TONY)
        self.root.update()
        top = window.master.grid_slaves(row=0)[0]
        labels = [w.cget("text") for w in sorted(top.winfo_children(), key=_column)]
        self.assertEqual(
            labels,
            ["NICKNAME", "Tony", "USERID", "Tony@hku.hk", "SERVER", "127.0.0.1"]
            + ["SERVER_PORT", str(self.port)],
        )
        buttons = [window.join_button, window.leave_button, window.send_button]
        self.assertEqual([b.cget("text") for b in buttons], ["JOIN", "LEAVE", "SEND"])


def _column(widget: tk.Widget) -> int:
    return int(widget.grid_info()["column"])


def offers_join(window: ChatWindow) -> bool:
    """What a closed window shows: JOIN can be pressed, LEAVE cannot."""
    states = (window.join_button.cget("state"), window.leave_button.cget("state"))
    return states == ("normal", "disabled")


class JoinTests(GuiTestCase):
    async def test_join_shows_peer_list_and_console_line(self) -> None:
        tony = await self.joined(TONY)
        await self.joined(MARY)
        await self.until_in("Tony (Tony@hku.hk)\nMary (mary@hku.hk)", tony.peer_list)
        self.assertIn("joined the chat room as Tony", pane_text(tony.console))

    async def test_join_while_connected_says_already_connected(self) -> None:
        tony = await self.joined(TONY)
        self.assertIsNone(tony.do_join())
        line, tags = first_line(tony.console)
        self.assertIn("already connected", line)
        self.assertIn("error", tags)

    async def test_closed_port_is_reported_in_the_console(self) -> None:
        closed = await closed_port()
        tony = self.window(TONY, port=closed)
        await tony.do_join()
        line, tags = first_line(tony.console)
        self.assertEqual(
            line, f"[ERROR] cannot reach 127.0.0.1:{closed}: connection refused"
        )
        self.assertIn("error", tags)

    async def test_silent_server_is_reported_after_two_seconds_once(self) -> None:
        silent = await listen_loopback(self, Factory.forProtocol(Protocol))
        tony = self.window(TONY, port=silent)
        started = time.monotonic()
        await tony.do_join()
        # Not before the 2 s; how much later is up to the machine's load.
        self.assertGreaterEqual(time.monotonic() - started, 2.0)
        # Closed after the timeout: the window offers JOIN again.
        await self.until(lambda: offers_join(tony), "JOIN enabled, LEAVE disabled")
        self.assertFalse(tony.client.connected)
        errors = [
            line
            for line in pane_text(tony.console).splitlines()
            if line.startswith("[ERROR]")
        ]
        self.assertEqual(
            errors, [f"[ERROR] 127.0.0.1:{silent} did not answer JOIN within 2 s"]
        )

    async def test_refused_join_shows_the_servers_reason(self) -> None:
        first = ChatClient(reactor, "Tony", TONY[1])
        self.addCleanup(first.leave)
        await first.connect_tcp("127.0.0.1", self.port)
        await first.join()
        tony = self.window(TONY)
        await tony.do_join()
        line, tags = first_line(tony.console)
        self.assertEqual(
            line, "[ERROR] join refused: user id 'Tony@hku.hk' is already joined"
        )
        self.assertIn("error", tags)
        await self.until(lambda: not tony.client.connected, "refused client closes")

    async def test_leave_closes_and_clears_the_peer_list(self) -> None:
        tony = await self.joined(TONY)
        await self.until_in("Tony (Tony@hku.hk)", tony.peer_list)
        tony.leave_button.invoke()
        await self.until(lambda: not tony.client.connected, "leave")
        self.assertEqual(pane_text(tony.peer_list), "")
        self.assertEqual(
            first_line(tony.console)[0], "left the chat room: we closed the connection"
        )

    async def test_leave_when_not_connected_says_so(self) -> None:
        tony = self.window(TONY)
        self.assertIsNone(tony.do_leave())
        self.assertEqual(
            first_line(tony.console),
            ("[ERROR] not connected: there is nothing to leave", ("error",)),
        )
        self.assertFalse(tony.client.connected)

    async def test_join_and_leave_are_enabled_only_when_they_can_act(self) -> None:
        tony = self.window(TONY)
        states = lambda: (  # noqa: E731
            tony.join_button.cget("state"),
            tony.leave_button.cget("state"),
        )
        self.assertEqual(states(), ("normal", "disabled"))
        joining = tony.do_join()
        self.assertEqual(states(), ("disabled", "normal"))  # LEAVE stops it
        await joining
        self.assertEqual(states(), ("disabled", "normal"))
        await tony.do_leave()
        self.assertEqual(states(), ("normal", "disabled"))

    async def test_new_window_tells_what_to_do_first(self) -> None:
        tony = self.window(TONY)
        self.assertEqual(
            pane_text(tony.console),
            f"Press JOIN to enter the chat room at 127.0.0.1:{self.port}. Then fill"
            " TO (click names in the list, or type ALL for everyone), type a"
            " message and press Enter.\n",
        )

    async def test_join_again_after_leave_and_after_server_went_away(self) -> None:
        relay = RecordingRelay("127.0.0.1", self.port)
        tony = self.window(TONY, port=await listen_loopback(self, relay))
        await tony.do_join()
        await tony.do_leave()
        await tony.do_join()
        self.assertTrue(tony.client.joined)
        relay.connections[-1].transport.loseConnection()  # the server hangs up
        await self.until(lambda: offers_join(tony), "JOIN enabled, LEAVE disabled")
        self.assertFalse(tony.client.connected)
        self.assertEqual(
            first_line(tony.console),
            (
                "[ERROR] the server closed the connection: press JOIN to join again",
                ("error",),
            ),
        )
        self.assertEqual(pane_text(tony.console).count("[ERROR]"), 1)
        self.assertEqual(pane_text(tony.peer_list), "")
        tony.join_button.invoke()
        await self.until(lambda: tony.client.joined, "rejoin")
        await self.until_in("Tony (Tony@hku.hk)", tony.peer_list)

    async def test_closing_the_window_disconnects_and_calls_on_close(self) -> None:
        tony = await self.joined(TONY)
        closed: list[bool] = []
        tony.on_close = lambda: closed.append(True)
        self.assertTrue(tony.master.protocol("WM_DELETE_WINDOW"))  # a handler is set
        self.root.tk.call(tony.master.protocol("WM_DELETE_WINDOW"))
        await self.until(lambda: closed == [True], "on_close")
        self.assertFalse(tony.client.connected)
