"""``muca-chat [CONFIG]`` (or ``python -m muca.client.cli``): the command line
that opens one chat window (:class:`~muca.client.gui.ChatWindow`) for the
user of a config file, and runs Twisted's reactor with Tk inside it."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import tkinter as tk
from typing import NoReturn

from muca.client.config import DEFAULT_CONFIG, ConfigError, load_config
from muca.client.gui import ChatWindow

# Tk's geometry: WIDTHxHEIGHT, +X+Y, or both (X and Y may be negative).
_GEOMETRY = re.compile(r"=?(\d+x\d+)?([+-]-?\d+[+-]-?\d+)?")


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (as a config error is)."""

    def error(self, message: str) -> NoReturn:
        """Print ``muca-chat: message`` and exit with status 2."""
        self.exit(2, f"{self.prog}: {message}\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not between 1 and 65535")
    return port


def _geometry(text: str) -> str:
    if not text or not _GEOMETRY.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not WIDTHxHEIGHT[+X+Y], e.g. 640x500+0+0"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    """``muca-chat [CONFIG]``: one chat window for the user of a config file."""
    parser = _Parser(prog="muca-chat", description="Open a MUCA chat window.")
    parser.add_argument(
        "config",
        nargs="?",
        default=DEFAULT_CONFIG,
        help=f"config file (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--geometry",
        type=_geometry,
        help="window size and position, e.g. 640x500+0+0",
    )
    parser.add_argument(
        "--join", action="store_true", help="join the chat room at once"
    )
    parser.add_argument(
        "--port", type=_port, help="server port, instead of the config's SERVER_PORT"
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"muca-chat: {error}", file=sys.stderr)
        return 2
    if args.port is not None:
        config = dataclasses.replace(config, port=args.port)
    try:
        root = tk.Tk()
    except tk.TclError as error:
        print(f"muca-chat: cannot open a window: {error}", file=sys.stderr)
        return 1
    if args.geometry:
        try:
            root.geometry(args.geometry)
        except tk.TclError as error:  # e.g. a size too large for Tk
            root.destroy()
            print(f"muca-chat: argument --geometry: {error}", file=sys.stderr)
            return 2

    from twisted.internet import reactor

    from muca.client import tkloop

    def quit_app() -> None:
        tkloop.uninstall()
        root.destroy()
        if reactor.running:
            reactor.stop()

    window = ChatWindow(root, config, reactor, on_close=quit_app)
    tkloop.install(root, reactor)
    if args.join:
        reactor.callWhenRunning(window.do_join)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
