"""Tk inside Twisted's reactor, answering the X server at once.

``twisted.internet.tksupport`` runs Tk by calling ``update()`` every few
milliseconds. Between two calls X events wait, and that loses keys typed
through a keymap change: ``xdotool type café`` (and input methods that do
the same) binds ``é`` to a spare keycode, presses it and unbinds it again at
once. Tk reads the keymap when it handles the ``MappingNotify``; handled
late, it reads the keymap already unbound and the ``é`` turns into nothing
(half the time at a 10 ms poll). So besides tksupport's poll (Tcl timers,
events Xlib has already queued) the reactor watches the X connection of Tk
and lets Tk handle its events as soon as the X server sends any.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import tkinter as tk

from twisted.internet import tksupport
from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

_reader: _XEvents | None = None


@implementer(IReadDescriptor)
class _XEvents:
    """The X connection's socket as the reactor sees it: readable means
    events for Tk."""

    def __init__(self, root: tk.Misc, fd: int, reactor: IReactorFDSet) -> None:
        self.root = root
        self.fd = fd
        self.reactor = reactor

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:
        try:
            self.root.update()
        except tk.TclError:
            self.reactor.removeReader(self)  # the window is gone

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return "tk"


def x_connection(root: tk.Misc) -> int | None:
    """The file descriptor of Tk's connection to the X server, or None when
    Tk does not run on X11 or its libraries cannot be found.

    Tk names no such thing in Tcl; its C API does: ``Tk_MainWindow`` of the
    interpreter, whose first field is the ``Display`` (``Tk_Display`` in
    tk.h), and Xlib's ``XConnectionNumber`` of that display.
    """
    if root.tk.call("tk", "windowingsystem") != "x11":
        return None
    tk_name = ctypes.util.find_library(f"tk{tk.TkVersion}")
    x11_name = ctypes.util.find_library("X11")
    if tk_name is None or x11_name is None:
        return None
    try:
        tk_lib = ctypes.CDLL(tk_name)
        x11 = ctypes.CDLL(x11_name)
    except OSError:
        return None
    tk_lib.Tk_MainWindow.restype = ctypes.c_void_p
    tk_lib.Tk_MainWindow.argtypes = [ctypes.c_void_p]
    window = tk_lib.Tk_MainWindow(root.tk.interpaddr())
    if not window:
        return None
    display = ctypes.c_void_p.from_address(window).value
    x11.XConnectionNumber.restype = ctypes.c_int
    x11.XConnectionNumber.argtypes = [ctypes.c_void_p]
    return int(x11.XConnectionNumber(display))


def install(root: tk.Misc, reactor: IReactorFDSet, ms: int = 10) -> None:
    """Run ``root`` inside ``reactor``: tksupport's poll every ``ms``, and
    at once whenever the X server sends Tk something."""
    global _reader
    tksupport.install(root, ms=ms)
    fd = x_connection(root)
    if fd is not None:
        _reader = _XEvents(root, fd, reactor)
        reactor.addReader(_reader)


def uninstall() -> None:
    """Stop running Tk inside the reactor (before destroying its root)."""
    global _reader
    reader, _reader = _reader, None
    if reader is not None:
        reader.reactor.removeReader(reader)
    tksupport.uninstall()
