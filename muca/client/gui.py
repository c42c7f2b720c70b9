"""The chat window: the original MUCA client's layout and behaviour, on Tk.

``muca-chat [CONFIG]`` (its command line is :mod:`muca.client.cli`) opens one
window for the user of a config file. Tk runs inside Twisted's reactor through
``twisted.internet.tksupport``; nothing here blocks and there is no modal
dialog (either would stop all networking while open): questions, such as a
password, are asked inside the window.
"""

from __future__ import annotations

import bisect
import datetime
import tkinter as tk
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from muca.client.client import ChatClient
from muca.client.config import ClientConfig
from muca.client.errors import ClientError, MessageTooLong
from muca.client.observer import ChatObserver, ReceivedMessage
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
    "note": "#8a4b00",
    "info": "black",
}
# Replayed messages: the colour of their type, dimmed (Tk has no alpha, so
# a paler shade of each).
HISTORY_COLOURS = {
    "private": "#e89090",
    "group": "#80b080",
    "broadcast": "#8080e0",
}
# Messages closer together than this are one burst: one bell for them all.
BURST_GAP = 5.0


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
        self._leave_pressed = False
        self._asking_password = False
        self._password = config.password
        self._shown_peers: tuple[Peer, ...] = ()
        self._title = f"MUCA chat - {config.nickname}"
        #: Messages that arrived while the window was not focused.
        self.unread = 0
        #: Times the bell rang (once per burst of unread messages).
        self.bells = 0
        self.burst_gap = BURST_GAP
        self._last_unread_at = float("-inf")
        # Ids of the messages shown, ascending, and the pane's mark at the
        # start of each (``m<id>``), so that replayed and older messages go
        # in their place: the pane shows the newest at the top.
        self._shown_ids: list[int] = []
        self._build()
        self._update_buttons()
        self.log(
            f"Press JOIN to enter the chat room at {config.server}:{config.port}."
            " Then fill TO (click names in the list, or type ALL for everyone),"
            " type a message and press Enter."
        )

    # Widgets

    def _build(self) -> None:
        master = self.master
        master.title(self._title)
        master.protocol("WM_DELETE_WINDOW", self.close)
        master.bind("<FocusIn>", self._focused, add="+")
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
        actions = tk.Frame(middle)
        self.send_button = tk.Button(
            actions, text="SEND", width=8, command=self.do_send
        )
        self.send_button.grid(row=0, column=0, pady=1)
        # Scroll-back: the history's older messages, below the oldest shown.
        self.older_button = tk.Button(
            actions,
            text="Load older",
            width=8,
            command=self.load_older,
            state="disabled",
        )
        self.older_button.grid(row=1, column=0, pady=1)
        self.join_button.grid(row=0, column=0, padx=2, pady=1, sticky="n")
        self.leave_button.grid(row=1, column=0, padx=2, pady=1, sticky="n")
        tk.Label(middle, text="TO:", font=("TkDefaultFont", 10, "bold")).grid(
            row=2, column=0
        )
        actions.grid(row=3, column=0, padx=2, sticky="n")
        peers = tk.Frame(middle)
        peers.grid(row=0, column=1, rowspan=2, sticky="nsew", pady=1)
        peers.columnconfigure(0, weight=1)
        self.peer_list = tk.Listbox(
            peers,
            height=4,
            width=60,
            fg=PEER_COLOUR,
            relief="flat",
            activestyle="none",
            exportselection=False,
        )
        self.peer_scroll = tk.Scrollbar(peers, command=self.peer_list.yview)
        self.peer_list.configure(yscrollcommand=self.peer_scroll.set)
        self.peer_list.grid(row=0, column=0, sticky="nsew")
        self.peer_scroll.grid(row=0, column=1, sticky="ns")
        self.peer_list.bind("<ButtonRelease-1>", self._peer_clicked)
        self.peer_list.bind("<Double-Button-1>", lambda event: "break")
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
        text = tk.Text(
            frame,
            height=height,
            width=70,
            wrap="word",
            relief="flat",
            pady=2,
            highlightthickness=0,  # read-only: no focus ring under the last line
        )
        # The padding under the last whole line looks like part of the pane.
        frame.configure(background=text.cget("background"))
        # A pane stretched by the window shows whole lines only: a last line
        # cut in half is hard to read and looks like a drawing fault.
        frame.bind("<Configure>", lambda event: self._whole_lines(text, event))
        scroll = tk.Scrollbar(frame, command=text.yview)
        text.configure(yscrollcommand=scroll.set)
        text.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        # The frame asks for the size of its contents as first built, and
        # keeps asking for it: the padding of _whole_lines must not change
        # what the window asks of the frame, or each change would resize
        # the frame again.
        border = 2 * int(frame.cget("borderwidth"))
        frame.configure(
            width=text.winfo_reqwidth() + scroll.winfo_reqwidth() + border,
            height=text.winfo_reqheight() + border,
        )
        frame.grid_propagate(False)
        for tag, colour in TAG_COLOURS.items():
            text.tag_configure(tag, foreground=colour)
        for tag in KIND_TAGS.values():
            text.tag_configure(tag, justify="right")
        for tag, colour in HISTORY_COLOURS.items():
            text.tag_configure(f"{tag}-history", foreground=colour, justify="right")
        text.tag_configure("own", justify="left")
        text.configure(state="disabled")
        return text

    @staticmethod
    def _whole_lines(text: tk.Text, event: tk.Event) -> None:
        """Pad below ``text`` so that it shows whole lines only.

        The padding is what is left of the frame's height under the most
        whole lines that fit.
        """
        line = int(text.tk.call("font", "metrics", text.cget("font"), "-linespace"))
        chrome = 2 * (
            int(text.cget("pady"))
            + int(text.cget("borderwidth"))
            + int(text.cget("highlightthickness"))
        )
        inner = event.height - 2 * int(event.widget.cget("borderwidth"))
        pad = max(0, (inner - chrome) % line)
        if getattr(text, "bottom_pad", None) != pad:
            text.bottom_pad = pad  # type: ignore[attr-defined]
            text.grid_configure(pady=(0, pad))

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

    def log_note(self, text: str) -> None:
        """Write a note (something done differently than asked) in the console."""
        self._prepend(self.console, f"note: {text}", "note")

    def _update_buttons(self) -> None:
        """JOIN and LEAVE are enabled only when pressing them can do something."""
        if not self.join_button.winfo_exists():
            return
        can_join = not self.client.joined and not self._busy
        can_leave = self.client.connected or self._busy
        can_load = self.client.joined and self.client.more_history
        self.join_button.configure(state="normal" if can_join else "disabled")
        self.leave_button.configure(state="normal" if can_leave else "disabled")
        self.older_button.configure(state="normal" if can_load else "disabled")

    def load_older(self) -> bool:
        """Load older: ask the server for the messages before the oldest shown."""
        if self.client.load_older():
            self.older_button.configure(state="disabled")  # until the answer
            return True
        return False

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
        self._update_buttons()
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
        self._update_buttons()
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
        self.log(
            "the server wants a password: type it in the PASSWORD field"
            " above and press Enter"
        )

    def _hide_password(self) -> None:
        self._asking_password = False
        self.password_label.grid_remove()
        self.password_entry.grid_remove()

    def do_leave(self) -> defer.Deferred[None] | None:
        """LEAVE: close the connection (or stop connecting) and clear the peer
        list; when not connected, say so."""
        if not self.client.connected and not self._busy:
            self.log_error("not connected: there is nothing to leave")
            return None
        self._leave_pressed = True
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
        chosen, left_out = recipients
        uids = [peer.uid for peer in chosen]
        names = ", ".join(peer.nickname for peer in chosen) or ALL
        try:
            self.client.send(uids, text)
        except MessageTooLong as too_long:
            self.log_error(str(too_long))  # the text stays for the user to cut
            return False
        self._prepend(self.messages, f"{clock_time(None)} [To: {names}] {text}", "own")
        self.message_entry.delete("1.0", "end")
        if left_out:
            kind = PRIVATE if len(chosen) == 1 else GROUP
            self.log_note(f"{left_out}; sent to {names} as {kind}")
        return True

    def _recipients(self, to_text: str) -> tuple[list[Peer], str] | None:
        """Resolve the TO field: the peers to send to ([] for ALL) and what
        was left out of TO (for a note), or None after an error in the
        console when nothing can be sent."""
        if to_text == ALL:
            return [], ""
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
            return [peers[name]], ""
        unknown = [name for name in names if name != me and name not in peers]
        chosen = [peers[name] for name in names if name != me and name in peers]
        if not chosen:
            self.log_error(
                f"{_listed(unknown) or 'nobody'} {_is_are(unknown)} not in the"
                " chat room: nothing sent"
            )
            return None
        left_out = []
        if me in names:
            left_out.append("you are not sent your own message")
        if unknown:
            left_out.append(f"{_listed(unknown)} {_is_are(unknown)} not in the room")
        return chosen, "; ".join(left_out)

    def _peer_clicked(self, event: tk.Event) -> None:
        """A click on a name in the peer list adds it to TO."""
        if not self._shown_peers:
            return
        index = self.peer_list.nearest(event.y)
        if not 0 <= index < len(self._shown_peers):
            return
        self.add_recipient(self._shown_peers[index].nickname)
        # The list is not a selection: TO is what counts, and it shows it.
        self.peer_list.selection_clear(0, "end")

    def add_recipient(self, nickname: str) -> None:
        """Add a nickname to the TO field (once; never our own)."""
        if nickname == self.config.nickname:
            self.log_note("that is you: pick someone else, or ALL for everyone")
            return
        names = [n.strip() for n in self.to_entry.get().split(",") if n.strip()]
        if names == [ALL]:
            names = []
        if nickname not in names:
            names.append(nickname)
        self.to_entry.delete(0, "end")
        self.to_entry.insert(0, ", ".join(names))
        self.message_entry.focus_set()

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
        """Show the peer list, one ``Nick (uid)`` a line, in join order."""
        if not self.peer_list.winfo_exists():
            return
        self._shown_peers = peers
        self.peer_list.delete(0, "end")
        self.peer_list.insert("end", *(f"{p.nickname} ({p.uid})" for p in peers))
        if peers:
            self.log(f"peer list updated: {len(peers)} in the chat room")

    def message_received(self, message: ReceivedMessage) -> None:
        """Show a message, right-aligned, coloured by its type; count it in
        the title (and ring once per burst) while the window is not focused."""
        tag = KIND_TAGS.get(message.kind, "broadcast")
        line = (
            f"{clock_time(message.timestamp_ms)} [From: {message.sender_nickname}]"
            f" {message.text}"
        )
        ident = message.ident
        if ident is None:
            self._prepend(self.messages, line, tag)
        elif not self._place(ident, line, tag, message.history):
            return  # already shown (a replay after LEAVE and JOIN)
        if message.history:
            return  # said before we came: nothing unread
        if self.master.winfo_exists() and not self.has_focus():
            self._unread_message()

    def _place(self, ident: int, line: str, tag: str, history: bool) -> bool:
        """Show a message with an id in id order; False if it is shown."""
        pane = self.messages
        if not pane.winfo_exists():
            return False
        shown = self._shown_ids
        at = bisect.bisect_left(shown, ident)
        if at < len(shown) and shown[at] == ident:
            return False
        # Live messages come in id order: the newest, at the top (above what
        # we sent since, which has no id). Replayed and older ones go right
        # below the next newer one shown.
        index = "1.0" if not history else self._below(at)
        if history:
            tag = f"{tag}-history"
        pane.configure(state="normal")
        index = pane.index(index)
        pane.insert(index, line + "\n", (tag,))
        pane.mark_set(f"m{ident}", index)
        pane.configure(state="disabled")
        shown.insert(at, ident)
        return True

    def _below(self, at: int) -> str:
        """Where a message goes whose next newer shown one is ``at``: at the
        start of the next older one, or at the end."""
        if at == 0:
            return "end-1c"
        return f"m{self._shown_ids[at - 1]}"

    def history_end(self, more: bool) -> None:
        """A replay or scroll-back is in: Load older works if more exist."""
        self._update_buttons()

    def has_focus(self) -> bool:
        """True when the keyboard focus is in this window."""
        try:
            widget = self.master.focus_get()
        except (KeyError, tk.TclError):
            return False  # focus in a Tk dialog this window did not make
        return widget is not None and widget.winfo_toplevel() is self.master

    def _unread_message(self) -> None:
        now = self.reactor.seconds()
        if now - self._last_unread_at > self.burst_gap:
            self.bells += 1
            self.master.bell()
        self._last_unread_at = now
        self.unread += 1
        self.master.title(f"({self.unread}) {self._title}")

    def _focused(self, event: tk.Event) -> None:
        if self.unread:
            self.unread = 0
            self._last_unread_at = float("-inf")
            self.master.title(self._title)

    def server_error(self, code: str, reason: str) -> None:
        """Show the server's ERROR in the console."""
        self.log_error(f"server says {code}: {reason}")

    def connection_lost(self, reason: str, requested: bool) -> None:
        """Tell the user who closed; a lost connection can be joined again."""
        pressed, self._leave_pressed = self._leave_pressed, False
        self._update_buttons()
        if self._closing or self._busy:
            return  # a failed JOIN reports its own reason
        if requested:
            # Closed by us: by LEAVE, or after a failure already reported.
            if pressed:
                self.log(f"left the chat room: {reason}")
        else:
            self.log_error(f"{reason}: press JOIN to join again")


def clock_time(timestamp_ms: int | None, now: datetime.datetime | None = None) -> str:
    """``HH:MM`` of a message's time in local time, with the date unless it
    is today; the time now when the server sent none."""
    now = now or datetime.datetime.now()
    if timestamp_ms is None:
        when = now
    else:
        when = datetime.datetime.fromtimestamp(timestamp_ms / 1000)
    if when.date() == now.date():
        return when.strftime("%H:%M")
    return when.strftime("%Y-%m-%d %H:%M")


def _listed(names: list[str]) -> str:
    return ", ".join(names)


def _is_are(names: list[str]) -> str:
    return "is" if len(names) == 1 else "are"


def pane_text(pane: tk.Text | tk.Listbox) -> str:
    """The whole text of a pane or list, a line per entry (for tests and scripts)."""
    if isinstance(pane, tk.Listbox):
        return "\n".join(pane.get(0, "end"))
    return pane.get("1.0", "end-1c")
