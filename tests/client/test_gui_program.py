"""muca-chat as a program: a real window shown, closed by a window manager."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from Xlib import X
from Xlib import display as xdisplay
from Xlib.protocol import event as xevent

from muca.client.gui import pane_text
from tests.support.client import (
    MARY,
    temp_folder,
    wait_until,
)
from tests.support.gui import GuiTestCase


def _top_level(display: xdisplay.Display, title: str) -> Any:
    """The top-level window on screen with this title, or None."""
    for window in display.screen().root.query_tree().children:
        shown = window.get_attributes().map_state == X.IsViewable
        if shown and window.get_wm_name() == title:
            return window
    return None


def window_shown(display_name: str, title: str) -> bool:
    """True when a top-level window with this title is on screen."""
    display = xdisplay.Display(display_name)
    try:
        return _top_level(display, title) is not None
    finally:
        display.close()


def close_like_a_window_manager(display_name: str, title: str) -> bool:
    """Send WM_DELETE_WINDOW to the top-level window with this title, as a
    window manager does when its close button is pressed; False while no such
    window is on screen."""
    display = xdisplay.Display(display_name)
    try:
        protocols = display.intern_atom("WM_PROTOCOLS")
        delete = display.intern_atom("WM_DELETE_WINDOW")
        window = _top_level(display, title)
        if window is None:
            return False
        message = xevent.ClientMessage(
            window=window,
            client_type=protocols,
            data=(32, [delete, X.CurrentTime, 0, 0, 0]),
        )
        window.send_event(message, event_mask=X.NoEventMask)
        display.flush()
        return True
    finally:
        display.close()


class ChatProgramTests(GuiTestCase):
    async def test_close_button_disconnects_and_ends_muca_chat(self) -> None:
        config = temp_folder(self) / "config.txt"
        config.write_text(
            json.dumps(
                {
                    "USERID": "zed@hku.hk",
                    "NICKNAME": "Zed",
                    "SERVER": "127.0.0.1",
                    "SERVER_PORT": self.port,
                }
            )
        )
        mary = self.window(MARY)
        await mary.do_join()
        program = subprocess.Popen(
            [sys.executable, "-m", "muca.client.cli", str(config), "--join"],
            env=dict(os.environ, DISPLAY=self.display),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.addCleanup(_end, program)
        # A nickname of its own, so that the window found is this program's.
        await wait_until(
            lambda: "Zed (zed@hku.hk)" in pane_text(mary.peer_list),
            timeout=30,
            what="muca-chat joins",
        )
        await wait_until(
            lambda: window_shown(self.display, "MUCA chat - Zed"),
            what="Zed's window on screen",
        )
        # Without a window manager, Tk now and then ignores a close request
        # that arrives just after its window appears: about once in 15 tries
        # here, and Tk never calls the WM_DELETE_WINDOW handler for it. A
        # person would click again; so does this test, at most three times.
        for _ in range(3):
            if not close_like_a_window_manager(self.display, "MUCA chat - Zed"):
                break  # the window has gone: the program is ending
            try:
                await wait_until(lambda: program.poll() is not None, timeout=3)
                break
            except AssertionError:
                continue
        await wait_until(
            lambda: program.poll() is not None, timeout=10, what="muca-chat ends"
        )
        self.assertEqual(program.returncode, 0)
        assert program.stdout is not None
        self.assertEqual(program.stdout.read(), b"")
        await self.until(
            lambda: pane_text(mary.peer_list) == "Mary (mary@hku.hk)", "Zed left"
        )


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(10)
    if process.stdout is not None:
        process.stdout.close()
