"""The chat window: the original MUCA client's layout and behaviour, on Tk.

``muca-chat [CONFIG]`` (or ``python -m muca.client.gui``) opens one window for the
user of a config file. Tk runs inside Twisted's reactor through
``twisted.internet.tksupport``; nothing here blocks and there is no modal
dialog (either would stop all networking while open): questions, such as a
password, are asked inside the window.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tkinter as tk
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from muca.client.client import ChatClient, ChatObserver, ClientError, ReceivedMessage
from muca.client.config import DEFAULT_CONFIG, ClientConfig, ConfigError, load_config
from muca.protocol.messages import ALL, AUTH_FAILED, GROUP, PRIVATE, JoinRefused, Peer

VALUE_COLOUR = "#007a00"
ENTRY_BACKGROUND = "#ffffe0"
PEER_COLOUR = "#0000cc"
KIND_TAGS = {PRIVATE: "private", GROUP: "group", ALL: "broadcast"}
TAG_COLOURS = {
    "own": "black",
    "private": "red",
    "group": "#008000",
    "broadcast": "blue",
    "error": "#b00000",
    "info": "black",
}


class ChatWindow(ChatObserver):
    """One user's chat window, built inside ``master`` (a Tk or a Toplevel).

    The buttons call :meth:`do_join`, :meth:`do_leave` and :meth:`do_send`;
    the client's events are drawn in the panes. ``on_close`` runs when the
    window's close button is pressed, after the connection is closed.
    """

    def __init__(
        self,
        master: tk.Tk | tk.Toplevel,
        config: ClientConfig,
        reactor: Any,
        on_close: Callable[[], None] | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.master = master
        self.config = config
        self.reactor = reactor
        self.on_close = on_close
        self.client = ChatClient(
            reactor, config.nickname, config.uid, self, timeout=timeout
        )
        self._busy = False
        self._closing = False
        self._quiet_close = False  # the connection of a refused JOIN
        self._asking_password = False
        self._password = config.password
        self._build()

    # Widgets

    def _build(self) -> None:
        master = self.master
        master.title(f"MUCA chat - {self.config.nickname}")
        master.protocol("WM_DELETE_WINDOW", self.close)
        master.columnconfigure(0, weight=1)

        top = tk.Frame(master)
        top.grid(row=0, column=0, sticky="ew", padx=4, pady=4)
        fields = (
            ("NICKNAME", self.config.nickname),
            ("USERID", self.config.uid),
            ("SERVER", self.config.server),
            ("SERVER_PORT", str(self.config.port)),
        )
        for index, (name, value) in enumerate(fields):
            tk.Label(top, text=name).grid(row=0, column=2 * index, padx=(3, 1))
            tk.Label(
                top, text=value, fg=VALUE_COLOUR, font=("TkDefaultFont", 10, "bold")
            ).grid(row=0, column=2 * index + 1, padx=(1, 5))

        self.messages = self._pane(master, row=1, height=10)
        master.rowconfigure(1, weight=3)

        middle = tk.Frame(master)
        middle.grid(row=2, column=0, sticky="ew", padx=2)
        middle.columnconfigure(1, weight=1)
        self.join_button = tk.Button(middle, text="JOIN", width=8, command=self.do_join)
        self.leave_button = tk.Button(
            middle, text="LEAVE", width=8, command=self.do_leave
        )
        self.send_button = tk.Button(middle, text="SEND", width=8, command=self.do_send)
        self.join_button.grid(row=0, column=0, padx=2, pady=1, sticky="n")
        self.leave_button.grid(row=1, column=0, padx=2, pady=1, sticky="n")
        tk.Label(middle, text="TO:", font=("TkDefaultFont", 10, "bold")).grid(
            row=2, column=0
        )
        self.send_button.grid(row=3, column=0, padx=2, pady=1, sticky="n")
        self.peer_list = tk.Text(
            middle, height=3, width=60, wrap="word", fg=PEER_COLOUR, relief="flat"
        )
        self.peer_list.grid(row=0, column=1, rowspan=2, sticky="nsew", pady=1)
        self.peer_list.configure(state="disabled")
        self.to_entry = tk.Entry(
            middle,
            bg=ENTRY_BACKGROUND,
            relief="solid",
            highlightthickness=1,
            highlightbackground="black",
        )
        self.to_entry.grid(row=2, column=1, sticky="ew", pady=2)
        self.message_entry = tk.Text(
            middle, height=3, width=60, wrap="word", bg=ENTRY_BACKGROUND, relief="flat"
        )
        self.message_entry.grid(row=3, column=1, sticky="nsew", pady=1)
        self.message_entry.bind("<Return>", self._on_return)
        self.message_entry.bind("<Shift-Return>", self._on_shift_return)
        self.to_entry.bind("<Return>", lambda event: self.message_entry.focus_set())

        # Asked for only when the server wants a password (see _join_failed).
        self.password_label = tk.Label(
            middle, text="PASSWORD:", font=("TkDefaultFont", 10, "bold")
        )
        self.password_entry = tk.Entry(
            middle,
            show="*",
            bg=ENTRY_BACKGROUND,
            relief="solid",
            highlightthickness=1,
            highlightbackground="black",
        )
        self.password_entry.bind("<Return>", lambda event: self.do_join())

        self.console = self._pane(master, row=3, height=6)
        master.rowconfigure(3, weight=2)

    def _pane(self, master: tk.Misc, row: int, height: int) -> tk.Text:
        frame = tk.Frame(master, relief="sunken", borderwidth=1)
        frame.grid(row=row, column=0, sticky="nsew", padx=4, pady=3)
        frame.columnconfigure(0, weight=1)
        frame.rowconfigure(0, weight=1)
        text = tk.Text(frame, height=height, width=70, wrap="word", relief="flat")
        scroll = tk.Scrollbar(frame, command=text.yview)
        text.configure(yscrollcommand=scroll.set)
        text.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        for tag, colour in TAG_COLOURS.items():
            text.tag_configure(tag, foreground=colour)
        for tag in KIND_TAGS.values():
            text.tag_configure(tag, justify="right")
        text.tag_configure("own", justify="left")
        text.configure(state="disabled")
        return text

    @staticmethod
    def _prepend(pane: tk.Text, line: str, tag: str) -> None:
        """Put one entry at the top of a pane: the newest is always first."""
        if not pane.winfo_exists():
            return  # the window is gone; late events have nowhere to go
        pane.configure(state="normal")
        pane.insert("1.0", line + "\n", (tag,))
        pane.configure(state="disabled")

    def log(self, text: str) -> None:
        """Write an event line at the top of the console pane."""
        self._prepend(self.console, text, "info")

    def log_error(self, text: str) -> None:
        """Write an error line at the top of the console pane."""
        self._prepend(self.console, f"[ERROR] {text}", "error")

    # The buttons

    def do_join(self) -> defer.Deferred[None] | None:
        """JOIN: connect and join; answers with the outcome in the console."""
        if self.client.joined:
            self.log_error("already connected: LEAVE first to join again")
            return None
        if self._busy:
            self.log_error("already connecting: wait for the answer")
            return None
        if self._asking_password and self.password_entry.get():
            self._password = self.password_entry.get()
        self._busy = True
        config = self.config
        where = f"{config.server}:{config.port}"
        self.log(f"connecting to {where}{' over TLS' if config.tls else ''} ...")
        if self.client.connected:
            # The connection of a refused JOIN may still be closing.
            attempt = self.client.leave()
        else:
            attempt = defer.succeed(None)
        attempt.addCallback(
            lambda _: self.client.connect_tcp(
                config.server, config.port, config.tls, config.ca_file
            )
        )
        attempt.addCallback(lambda _: self.client.join(self._password))
        attempt.addCallbacks(self._joined_ok, self._join_failed)
        attempt.addBoth(self._not_busy)
        return attempt

    def _not_busy(self, result: Any) -> Any:
        self._busy = False
        return result

    def _joined_ok(self, _: None) -> None:
        self._hide_password()
        self.log(f"joined the chat room as {self.config.nickname}")

    def _join_failed(self, failure: Failure) -> None:
        refusal = failure.check(JoinRefused)
        if refusal:
            error = failure.value
            self.log_error(f"join refused: {error.reason}")
            if error.code == AUTH_FAILED:
                self._ask_password()
            self._quiet_close = True
            self.client.leave()
        elif failure.check(ClientError):
            self.log_error(str(failure.value))
        else:
            self.log_error(f"cannot join: {failure.getErrorMessage()}")

    def _ask_password(self) -> None:
        self._asking_password = True
        self.password_label.grid(row=4, column=0, pady=2)
        self.password_entry.grid(row=4, column=1, sticky="ew", pady=2)
        self.password_entry.delete(0, "end")
        self.password_entry.focus_set()
        self.log("the server wants a password: type it below and press Enter")

    def _hide_password(self) -> None:
        self._asking_password = False
        self.password_label.grid_remove()
        self.password_entry.grid_remove()

    def do_leave(self) -> defer.Deferred[None] | None:
        """LEAVE: close the connection (or stop connecting) and clear the peer
        list; nothing happens when not connected."""
        if not self.client.connected and not self._busy:
            return None
        return self.client.leave()

    def do_send(self) -> bool:
        """SEND: check TO and the message, then send; True when something was sent."""
        text = self.message_entry.get("1.0", "end-1c")
        to_text = self.to_entry.get().strip()
        if not self.client.joined:
            self.log_error("not connected: JOIN the chat room before sending")
            return False
        if not to_text:
            self.log_error("TO is empty: give nicknames separated by ', ' or ALL")
            return False
        if not text.strip():
            self.log_error("the message is empty")
            return False
        recipients = self._recipients(to_text)
        if recipients is None:
            return False
        uids = [peer.uid for peer in recipients]
        names = ", ".join(peer.nickname for peer in recipients) or ALL
        self.client.send(uids, text)
        self._prepend(self.messages, f"[To: {names}] {text}", "own")
        self.message_entry.delete("1.0", "end")
        return True

    def _recipients(self, to_text: str) -> list[Peer] | None:
        """Resolve the TO field: [] for ALL, the peers to send to, or None after
        an error in the console when nothing can be sent."""
        if to_text == ALL:
            return []
        names: list[str] = []
        for part in to_text.split(","):
            name = part.strip()
            if name and name not in names:
                names.append(name)
        peers = {peer.nickname: peer for peer in self.client.peers}
        me = self.config.nickname
        if len(names) == 1:
            name = names[0]
            if name == me:
                self.log_error("you cannot send a private message to yourself")
                return None
            if name not in peers:
                self.log_error(f"{name} is not in the chat room: nothing sent")
                return None
            return [peers[name]]
        if me in names:
            self.log_error("removed yourself from the recipients")
        unknown = [name for name in names if name != me and name not in peers]
        if unknown:
            self.log_error(f"removed unknown recipients: {', '.join(unknown)}")
        chosen = [peers[name] for name in names if name != me and name in peers]
        if not chosen:
            self.log_error("no recipients left: nothing sent")
            return None
        return chosen

    def _on_return(self, event: tk.Event) -> str:
        self.do_send()
        return "break"

    def _on_shift_return(self, event: tk.Event) -> str:
        self.message_entry.insert("insert", "\n")
        return "break"

    def close(self) -> None:
        """The close button: disconnect, then run ``on_close``."""
        if self._closing:
            return
        self._closing = True
        left = self.client.leave()
        # A TLS close waits for the peer; never let the window hang on it.
        left.addTimeout(1.0, self.reactor)
        left.addBoth(self._closed)

    def _closed(self, _: Any) -> None:
        if self.on_close is not None:
            self.on_close()

    # Client events

    def peers_changed(self, peers: tuple[Peer, ...]) -> None:
        """Show the peer list as ``Nick (uid), ...``."""
        if not self.peer_list.winfo_exists():
            return
        self.peer_list.configure(state="normal")
        self.peer_list.delete("1.0", "end")
        self.peer_list.insert(
            "1.0", ", ".join(f"{p.nickname} ({p.uid})" for p in peers)
        )
        self.peer_list.configure(state="disabled")
        if peers:
            self.log(f"peer list updated: {len(peers)} in the chat room")

    def message_received(self, message: ReceivedMessage) -> None:
        """Show a message, right-aligned, coloured by its type."""
        tag = KIND_TAGS.get(message.kind, "broadcast")
        self._prepend(
            self.messages, f"[From: {message.sender_nickname}] {message.text}", tag
        )

    def server_error(self, code: str, reason: str) -> None:
        """Show the server's ERROR in the console."""
        self.log_error(f"server says {code}: {reason}")

    def connection_lost(self, reason: str, requested: bool) -> None:
        """Tell the user; a lost connection can be joined again with JOIN."""
        quiet, self._quiet_close = self._quiet_close, False
        if self._closing or self._busy or quiet:
            return  # a failed JOIN reports its own reason
        if requested:
            self.log("left the chat room: connection closed")
        else:
            self.log_error(f"connection to the server lost ({reason}): JOIN to rejoin")


def pane_text(pane: tk.Text) -> str:
    """The whole text of a pane (for tests and scripts)."""
    return pane.get("1.0", "end-1c")


def main(argv: list[str] | None = None) -> int:
    """``muca-chat [CONFIG]``: one chat window for the user of a config file."""
    parser = argparse.ArgumentParser(
        prog="muca-chat", description="Open a MUCA chat window."
    )
    parser.add_argument(
        "config",
        nargs="?",
        default=DEFAULT_CONFIG,
        help=f"config file (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument("--geometry", help="window size and position, e.g. 640x500+0+0")
    parser.add_argument(
        "--join", action="store_true", help="join the chat room at once"
    )
    parser.add_argument(
        "--port", type=int, help="server port, instead of the config's SERVER_PORT"
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
        root.geometry(args.geometry)

    from twisted.internet import reactor, tksupport

    def quit_app() -> None:
        tksupport.uninstall()
        root.destroy()
        if reactor.running:
            reactor.stop()

    window = ChatWindow(root, config, reactor, on_close=quit_app)
    tksupport.install(root)
    if args.join:
        reactor.callWhenRunning(window.do_join)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
