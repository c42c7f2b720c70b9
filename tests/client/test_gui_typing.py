"""Typing into the real Tk window through the X server: ``xdotool type``
binds a character that the keymap lacks (``é``) to a spare keycode, presses
it and unbinds it at once; the window must keep every such character
(muca.client.tkloop)."""

from __future__ import annotations

import os
import shutil

from twisted.internet.utils import getProcessOutputAndValue

from tests.support.client import TONY
from tests.support.gui import GuiTestCase

TRIES = 30


class NonAsciiTypingTests(GuiTestCase):
    async def test_xdotool_types_cafe_thirty_times_and_every_e_acute_arrives(
        self,
    ) -> None:
        xdotool = shutil.which("xdotool")
        if xdotool is None:
            self.fail("xdotool is missing (scripts/test installs it)")
        window = self.window(TONY, geometry="650x480+0+0")
        entry = window.message_entry
        window.master.deiconify()
        self.root.update()
        entry.focus_force()
        self.root.update()
        environment = {**os.environ, "DISPLAY": self.display}
        for _attempt in range(TRIES):
            # The reactor keeps running Tk while xdotool types.
            out, err, code = await getProcessOutputAndValue(
                xdotool, ["type", "--delay", "12", "café "], env=environment
            )
            self.assertEqual(code, 0, err)
        await self.until(
            lambda: entry.get("1.0", "end-1c").count(" ") == TRIES, "every space"
        )
        typed = entry.get("1.0", "end-1c").split()
        self.assertEqual(typed, ["café"] * TRIES)
