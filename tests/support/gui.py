"""A display, a server and a Tk root per test (``GuiTestCase``)."""

from __future__ import annotations

import gc
import re
import shutil
import subprocess
import tkinter as tk
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.client import tkloop
from muca.client.config import ClientConfig
from muca.client.gui import ChatWindow, pane_text
from tests.support import start_service
from tests.support.client import (
    start_display,
    wait_until,
)

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "artifacts"


#: The time in front of every line of the messages pane (HH:MM, with the
#: date when not today).
TIME_PREFIX = re.compile(r"(?m)^(\d{4}-\d\d-\d\d )?\d\d:\d\d ")


def first_line(pane: tk.Text) -> tuple[str, tuple[str, ...]]:
    """The top line of a pane and its tags (without a message's time)."""
    return TIME_PREFIX.sub("", pane.get("1.0", "1.end"), count=1), pane.tag_names("1.0")


def message_text(pane: tk.Text) -> str:
    """The messages pane's text with the time in front of each line removed."""
    return TIME_PREFIX.sub("", pane_text(pane))


#: Every test's Tk root, kept until the process exits. A Tcl interpreter
#: must be deleted by the thread that made it (else Tcl aborts the process:
#: "Tcl_AsyncDelete: async handler deleted by the wrong thread"); a widget
#: or variable of a test left in a reference cycle holds its interpreter,
#: and the garbage collector may free the cycle later on any thread (a
#: store's), so the interpreters outlive every test.
_ROOTS: list[tk.Tk] = []


class GuiTestCase(TestCase):
    """A display, a server and a Tk root driven by tksupport, for each test."""

    #: Extra ``twistd muca`` options for the test's server.
    server_args: tuple[str, ...] = ()

    async def setUp(self) -> None:
        self.display = start_display(self)
        (listening,) = await start_service(
            self, "--listen", "tcp:0:interface=127.0.0.1", *self.server_args
        )
        self.port = listening.getHost().port
        #: The server's ChatFactory, to make it hang up on a client.
        self.server = listening.factory
        self.root = tk.Tk(screenName=self.display)
        self.root.withdraw()
        self.addCleanup(self._forget_tk)
        tkloop.install(self.root, reactor, ms=5)
        self.addCleanup(tkloop.uninstall)

    def _forget_tk(self) -> None:
        """Destroy the Tk root, keep its interpreter (see ``_ROOTS``) and
        collect the test's garbage here, on the main thread."""
        self.root.destroy()
        _ROOTS.append(self.root)
        del self.root
        gc.collect()

    def window(
        self,
        user: tuple[str, str],
        port: int | None = None,
        geometry: str | None = None,
        **options: Any,
    ) -> ChatWindow:
        top = tk.Toplevel(self.root)
        if geometry:
            top.geometry(geometry)
        config = ClientConfig(
            user[1], user[0], "127.0.0.1", port or self.port, **options
        )
        window = ChatWindow(top, config, reactor)
        self.addCleanup(window.client.leave)
        return window

    async def joined(self, user: tuple[str, str], **options: Any) -> ChatWindow:
        window = self.window(user, **options)
        await window.do_join()
        self.assertTrue(window.client.joined)
        return window

    async def until(self, predicate: Any, what: str) -> None:
        await wait_until(predicate, what=what)

    async def until_in(self, text: str, pane: tk.Text | tk.Listbox) -> None:
        await wait_until(lambda: text in pane_text(pane), what=repr(text))

    def type_into(self, window: ChatWindow, to: str, message: str) -> None:
        window.to_entry.delete(0, "end")
        window.to_entry.insert(0, to)
        window.message_entry.delete("1.0", "end")
        window.message_entry.insert("1.0", message)

    def save_screenshot(self, name: str) -> None:
        """Save the whole display as artifacts/NAME (ImageMagick's import)."""
        grab = shutil.which("import")
        if grab is None:
            self.fail("ImageMagick's import is missing (scripts/test installs it)")
        ARTIFACTS.mkdir(exist_ok=True)
        target = ARTIFACTS / name
        subprocess.run(
            [grab, "-display", self.display, "-window", "root", str(target)],
            check=True,
            timeout=30,
        )
        self.assertGreater(target.stat().st_size, 10_000)
