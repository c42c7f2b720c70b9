"""The chat window: the original MUCA client's layout and behaviour, on Tk.

``muca-chat [CONFIG]`` (its command line is :mod:`muca.client.cli`) opens one
window for the user of a config file. Tk runs inside Twisted's reactor through
``twisted.internet.tksupport``; nothing here blocks and there is no modal
dialog (either would stop all networking while open): questions, such as a
password, are asked inside the window, or in a dialog that is not modal
(``/password``, :mod:`muca.client.dialogs`).

Accounts (a server with ``--auth db``): ``/register CODE`` in the message
box, before joining, makes an account for the window's user id with the
password of the PASSWORD field (or the config's) and that invitation code
(``/register`` alone on an open server); ``/password`` (or ``/password OLD
NEW``), joined, changes it. Each answer is one console line.
"""

from __future__ import annotations

import bisect
import datetime
import tkinter as tk
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from muca.client.addressing import AddressError, address
from muca.client.client import ChatClient
from muca.client.config import ClientConfig
from muca.client.dialogs import PasswordDialog
from muca.client.errors import ClientError, MessageTooLong, RoomRefused, refused_text
from muca.client.observer import ChatObserver, ReceivedMessage, SearchResult
from muca.client.panes import (
    AWAY_COLOUR,
    ENTRY_BACKGROUND,
    KIND_TAGS,
    PEER_COLOUR,
    VALUE_COLOUR,
    make_pane,
    prepend,
)
from muca.client.panes import pane_text as pane_text
from muca.client.presence import PresenceLines, room_line
from muca.client.rooms import RoomInfo
from muca.client.sending import Refusal
from muca.protocol.messages import ALL, AUTH_FAILED, JoinRefused, Peer, ProtocolError

# Messages closer together than this are one burst: one bell for them all.
BURST_GAP = 5.0

# The peer list's width in characters, and the room list's out of it.
PEER_WIDTH = 60
ROOM_WIDTH = 22

# What the message box takes as a rooms command rather than a message.
#: ``/search words``: the newest matches in the console (at most this many,
#: each text cut to SEARCH_TEXT characters).
SEARCH_COMMAND = "/search"
SEARCH_HITS = 20
SEARCH_TEXT = 120

ROOM_COMMANDS = {"/enter": "enter", "/join": "enter", "/exit": "exit", "/leave": "exit"}

#: The moderation commands (in the room ALL goes to now) and how they are used.
MODERATION_USAGE = {
    "/kick": "/kick UID",
    "/ban": "/ban UID [10m]",
    "/mute": "/mute UID 10m",
    "/unmute": "/unmute UID",
    "/unban": "/unban UID",
    "/delete": "/delete ID",
    "/report": "/report ID reason",
    "/slow": "/slow SECONDS",
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int | None:
    """Seconds in ``90``, ``30s``, ``10m``, ``1h``, ``2d``; None if it is none."""
    unit = _UNITS.get(text[-1:], 0)
    digits = text[:-1] if unit else text
    if not digits.isdigit() or int(digits) == 0:
        return None
    return int(digits) * (unit or 1)


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
        #: The ``/password`` dialog while it is open.
        self.password_dialog: PasswordDialog | None = None
        # The peer list's entries: the users in the room, then those away.
        self._shown_peers: tuple[Peer, ...] = ()
        #: Lines written to the console so far.
        self.console_lines = 0
        self._presence = PresenceLines()
        # console_lines when the last presence line was written.
        self._presence_line = -1
        # Serials of our sent messages with a mark (``s<serial>``) at the
        # start of their line, while the server may still refuse them.
        self._marked: set[int] = set()
        self._title = f"MUCA chat - {config.nickname}"
        #: Messages that arrived while the window was not focused.
        self.unread = 0
        #: The room a message to ALL goes to (None: the default room).
        self.room: str | None = None
        #: Messages that came in rooms other than the one ALL goes to.
        self.room_unread: dict[str, int] = {}
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

        self.messages = make_pane(master, row=1, height=10)
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
            width=PEER_WIDTH,
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
        # The rooms, beside the peer list once we are in more than the
        # default room (until then the window is the original's).
        self.room_list = tk.Listbox(
            peers,
            height=4,
            width=ROOM_WIDTH,
            relief="flat",
            activestyle="none",
            exportselection=False,
        )
        self.room_list.bind("<ButtonRelease-1>", self._room_clicked)
        self._shown_rooms: tuple[str, ...] = ()
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

        self.console = make_pane(master, row=3, height=6)
        master.rowconfigure(3, weight=2)

    def _log(self, line: str, tag: str) -> None:
        self.console_lines += 1
        prepend(self.console, line, tag)

    def log(self, text: str) -> None:
        """Write an event line at the top of the console pane."""
        self._log(text, "info")

    def log_error(self, text: str) -> None:
        """Write an error line at the top of the console pane."""
        self._log(f"[ERROR] {text}", "error")

    def log_note(self, text: str) -> None:
        """Write a note (something done differently than asked) in the console."""
        self._log(f"note: {text}", "note")

    def _update_buttons(self) -> None:
        """JOIN and LEAVE are enabled only when pressing them can do something."""
        if not self.join_button.winfo_exists():
            return
        can_join = not self.client.joined and not self._busy
        can_leave = self.client.connected or self._busy
        can_load = self.client.has_older()
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
        self._show_password()
        self.password_entry.delete(0, "end")
        self.log(
            "the server wants a password: type it in the PASSWORD field"
            " above and press Enter"
        )

    def _show_password(self) -> None:
        self._asking_password = True
        self.password_label.grid(row=4, column=0, pady=2)
        self.password_entry.grid(row=4, column=1, sticky="ew", pady=2)
        self.password_entry.focus_set()

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
        command = text.split()
        if command[:1] in (["/register"], ["/password"]):
            done = self._account_command(command[0], command[1:])
            if done:
                self.message_entry.delete("1.0", "end")
            return done
        if not self.client.joined:
            self.log_error("not connected: JOIN the chat room before sending")
            return False
        words = command
        if words and words[0] == SEARCH_COMMAND:
            query = text.strip()[len(SEARCH_COMMAND) :].strip()
            if not query:
                self.log_error("/search needs words: /search plan*")
                return False
            self._search(query)
            self.message_entry.delete("1.0", "end")
            return True
        if words and words[0] in MODERATION_USAGE:
            done = self._moderation_command(words[0], words[1:], text)
            if done:
                self.message_entry.delete("1.0", "end")
            return done
        if words[:1] in (["/exit"], ["/leave"]) and len(words) == 1:
            # Bare: out of the room ALL goes to now.
            words.append(self.room or self.client.default_room or "")
        if len(words) == 2 and words[0] in ROOM_COMMANDS:
            done = self._room_command(ROOM_COMMANDS[words[0]], words[1])
            if done:
                self.message_entry.delete("1.0", "end")
            return done
        if not to_text:
            self.log_error("TO is empty: give nicknames separated by ', ' or ALL")
            return False
        if not text.strip():
            self.log_error("the message is empty")
            return False
        client = self.client
        try:
            addressed = address(
                to_text, self.config.nickname, client.peers, client.away
            )
        except AddressError as error:
            self.log_error(str(error))
            return False
        uids = [peer.uid for peer in addressed.recipients]
        room = self.room if not uids else None
        try:
            sent = client.send(uids, text, room=room)
        except MessageTooLong as too_long:
            self.log_error(str(too_long))  # the text stays for the user to cut
            return False
        where = f" in #{room}" if room else ""
        line = f"{clock_time(None)} [To: {addressed.names}{where}] {text}"
        prepend(self.messages, line, "own")
        self._mark_sent(sent.serial)
        self.message_entry.delete("1.0", "end")
        if addressed.note:
            self.log_note(addressed.note)
        return True

    # Accounts

    def _account_command(self, command: str, words: list[str]) -> bool:
        """``/register [CODE]`` or ``/password [OLD NEW]``; True when asked of
        the server (or the dialog opened), False after an error line."""
        if command == "/register":
            if len(words) > 1:
                self.log_error("/register takes one invitation code: /register CODE")
                return False
            return self.do_register(words[0] if words else None)
        if len(words) not in (0, 2):
            self.log_error(
                "/password takes your old password and the new one:"
                " /password OLD NEW, or /password alone to type them masked"
            )
            return False
        if not self.client.joined:
            self.log_error("not connected: JOIN with your password before changing it")
            return False
        if words:
            self.change_password(words[0], words[1])
        else:
            self.ask_new_password()
        return True

    def do_register(self, invitation: str | None) -> bool:
        """Make an account for this window's user id with the PASSWORD
        field's password (else the config's) and ``invitation``; the answer
        is one console line. False when nothing could be asked."""
        if self.client.joined:
            self.log_error(
                "already joined: an account is made before joining; LEAVE first"
            )
            return False
        if self._busy:
            self.log_error("already connecting: wait for the answer")
            return False
        typed = self.password_entry.get() if self._asking_password else ""
        password = typed or self._password
        if not password:
            self._show_password()
            self.log(
                "type the password for your new account in the PASSWORD field"
                " above, then /register"
                + (f" {invitation}" if invitation else " CODE")
                + " again"
            )
            return False
        self._busy = True
        self._update_buttons()
        config = self.config
        if self.client.connected:
            attempt = self.client.leave()
        else:
            attempt = defer.succeed(None)
        attempt.addCallback(
            lambda _: self.client.connect_tcp(
                config.server, config.port, config.tls, config.ca_file
            )
        )
        attempt.addCallback(lambda _: self.client.register(password, invitation))

        def registered(_: None) -> None:
            self._password = password
            self.log(
                f"account created: you can join with it ({config.uid}); press JOIN"
            )

        def refused(failure: Failure) -> None:
            if failure.check(ClientError):
                self.log_error(str(failure.value))
            else:
                self.log_error(
                    f"cannot create the account: {failure.getErrorMessage()}"
                )

        attempt.addCallbacks(registered, refused)
        attempt.addBoth(self._not_busy)
        # The connection was for REGISTER only: JOIN makes its own.
        attempt.addBoth(lambda _: self.client.leave())
        return True

    def ask_new_password(self) -> PasswordDialog:
        """``/password`` alone: the dialog asking the old and the new one."""
        dialog = self.password_dialog
        if dialog is not None and dialog.open:
            dialog.top.lift()
            return dialog
        self.password_dialog = PasswordDialog(
            self.master, f"Change password - {self.config.uid}", self.change_password
        )
        return self.password_dialog

    def change_password(self, old: str, new: str) -> defer.Deferred[None]:
        """``PASSWORD``: one console line, ``password changed`` or why not."""
        attempt = self.client.change_password(old, new)

        def changed(_: None) -> None:
            self._password = new
            self.log("password changed: join with the new one from now on")

        def refused(failure: Failure) -> None:
            if failure.check(ClientError):
                self.log_error(str(failure.value))
            else:
                self.log_error(
                    f"cannot change the password: {failure.getErrorMessage()}"
                )

        return attempt.addCallbacks(changed, refused)

    def _search(self, query: str) -> None:
        """``/search words``: the newest matches listed in the console,
        newest at the top under a line that counts them; a refusal is one
        error line."""
        searching = self.client.search(query, limit=SEARCH_HITS)

        def found(result: SearchResult) -> None:
            # Written oldest first: each line goes to the top.
            for hit in reversed(result.messages):
                where = f"#{hit.room} " if hit.room else ""
                text = " ".join(hit.text.split())
                if len(text) > SEARCH_TEXT:
                    text = text[: SEARCH_TEXT - 1] + "…"
                self.log(
                    f"  {clock_time(hit.timestamp_ms)} {where}"
                    f"{hit.sender_nickname}: {text}"
                )
            count = len(result.messages)
            more = " (older ones too: narrow the words)" if result.more else ""
            self.log(
                f"search {query!r}: {count} found{more}"
                if count
                else f"search {query!r}: nothing found"
            )

        def refused(failure: Failure) -> None:
            failure.trap(ClientError)
            self.log_error(str(failure.value))

        searching.addCallbacks(found, refused)

    def _room_command(self, command: str, written: str) -> bool:
        """``/enter NAME`` (or ``/join #NAME``): into a room, or back to one
        we are in; ``/exit NAME`` (``/leave NAME``): out of it (bare: out of
        the one ALL goes to)."""
        client = self.client
        try:
            if command == "enter":
                name = written.lstrip("#").lower()
                if name in client.rooms_in:
                    self._show_room(name)
                else:
                    client.enter(written).addErrback(lambda _: None)
            else:
                client.exit(written)
        except ClientError as problem:
            self.log_error(str(problem))
            return False
        except ProtocolError as bad:  # not a room name: nothing was sent
            ref = "ENTER" if command == "enter" else "EXIT"
            self.log_error(refused_text(ref, None, bad.reason, bad.code))
            return False
        return True

    def _show_room(self, room: str) -> None:
        """Messages to ALL go to ``room`` now (None: the default room)."""
        default = self.client.default_room
        self.room = None if room == default else room
        shown = room or default
        self.room_unread.pop(shown or "", None)
        self._draw_rooms()
        self.log(
            f"messages to ALL go to #{shown} now"
            + (f"; /exit {shown} leaves it" if self.room else "")
        )

    def rooms_changed(self, rooms: tuple[RoomInfo, ...]) -> None:
        """``ROOMS``: redraw the room list."""
        self._draw_rooms()

    def _draw_rooms(self) -> None:
        """The room list: ``#dev (2)`` a line, ``- enter`` for one we are
        not in, ``[3 new]`` for messages there since we looked; shown only
        while we are in a room other than the default one."""
        listing = self.room_list
        if not listing.winfo_exists():
            return
        client = self.client
        inside = client.rooms_in
        default = client.default_room
        wanted = bool(client.rooms) and (
            len(inside) > 1 or default not in inside or self.room is not None
        )
        if not wanted:
            listing.grid_remove()
            self.peer_list.configure(width=PEER_WIDTH)
            self._shown_rooms = ()
            return
        current = self.room or default
        lines = []
        for info in client.rooms:
            line = f"#{info.name} ({info.count})"
            if not info.inside:
                line += " - enter"
            unread = self.room_unread.get(info.name, 0)
            if unread:
                line += f" [{unread} new]"
            lines.append(line)
        listing.delete(0, "end")
        listing.insert("end", *lines)
        self._shown_rooms = tuple(info.name for info in client.rooms)
        for index, name in enumerate(self._shown_rooms):
            if name == current:
                listing.itemconfigure(index, background=ENTRY_BACKGROUND)
        # The two lists share the peer list's width: the window keeps its size.
        self.peer_list.configure(width=PEER_WIDTH - ROOM_WIDTH - 2)
        listing.grid(row=0, column=2, sticky="nsew", padx=(4, 0))

    def _room_clicked(self, event: tk.Event) -> None:
        """A click on a room: ALL goes there (entering it first if need be)."""
        index = self.room_list.nearest(event.y)
        if not 0 <= index < len(self._shown_rooms):
            return
        name = self._shown_rooms[index]
        self._room_command("enter", name)

    def room_entered(self, room: str, topic: str) -> None:
        """``ENTERED``: say so, with the topic; ALL reaches that room now."""
        self.log(f"entered #{room}" + (f": {topic}" if topic else ""))
        self._show_room(room)

    def room_exited(self, room: str) -> None:
        """We left ``room``: ALL goes back to the default room."""
        self.log(f"left #{room}")
        if self.room == room:
            self._show_room(self.client.default_room or "")

    def room_refused(self, refusal: RoomRefused) -> None:
        """A refused ``ENTER`` or ``EXIT``: the client's readable line."""
        self.log_error(str(refusal))

    def _moderation_command(self, command: str, args: list[str], text: str) -> bool:
        """``/kick``, ``/ban``, ``/mute``, ``/unmute``, ``/unban``, ``/delete``,
        ``/report``, ``/slow``; the server's answer is a console line (a
        notice, or its ERROR). False after a usage line."""
        usage = f"use {MODERATION_USAGE[command]}"
        client, room = self.client, self.room or self.client.default_room
        if command in ("/delete", "/report"):
            if (
                not args
                or not args[0].isdigit()
                or (command == "/report") != (len(args) > 1)
            ):
                self.log_error(usage)
                return False
            reason = text.split(None, 2)[2] if len(args) > 1 else ""
            if command == "/delete":
                client.delete(int(args[0]))
            else:
                client.report(int(args[0]), reason)
            return True
        if command == "/slow":
            seconds = parse_duration(args[0]) if len(args) == 1 else None
            if args == ["0"]:
                seconds = 0
            if seconds is None or room is None:
                self.log_error(usage)
                return False
            client.set_room(room, slow=seconds)
            return True
        seconds = None
        if command in ("/ban", "/mute") and len(args) == 2:
            seconds = parse_duration(args[1])
            if seconds is None:
                self.log_error(
                    f"{usage}: {args[1]!r} is no duration (30s, 10m, 1h, 2d)"
                )
                return False
        elif len(args) != 1 or (command == "/mute"):
            self.log_error(usage)
            return False
        client.moderate(command[1:].upper(), args[0], room, seconds)
        return True

    def notice(self, text: str) -> None:
        """A moderation line in the console."""
        self.log_note(text)

    def topic_changed(self, room: str, topic: str, by: str) -> None:
        """A room's new topic, in the console."""
        who = self.client.nickname_of(by)
        self.log_note(f"{who} set the topic of #{room}: {topic}")

    def _mark_sent(self, serial: int) -> None:
        """Mark the line just sent, and forget the marks of messages that
        can no longer be refused."""
        pane = self.messages
        if not pane.winfo_exists():
            return
        waiting = self.client.sent.serials()
        for old in self._marked - waiting:
            pane.mark_unset(f"s{old}")
        self._marked &= waiting
        pane.mark_set(f"s{serial}", "1.0")
        self._marked.add(serial)

    def _peer_clicked(self, event: tk.Event) -> None:
        """A click on a name in the peer list adds it to TO."""
        if not self._shown_peers:
            return
        index = self.peer_list.nearest(event.y)
        if not 0 <= index < len(self._shown_peers):
            return
        peer = self._shown_peers[index]
        present = {p.nickname for p in self.client.peers}
        away = index >= len(self.client.peers)
        # An away user whose nickname somebody in the room has now is
        # addressed by user id.
        name = peer.uid if away and peer.nickname in present else peer.nickname
        self.add_recipient(name)
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
        if self.password_dialog is not None:
            self.password_dialog.close()
        left = self.client.leave()
        # A TLS close waits for the peer; never let the window hang on it.
        left.addTimeout(1.0, self.reactor)
        left.addBoth(self._closed)

    def _closed(self, _: Any) -> None:
        if self.on_close is not None:
            self.on_close()

    # Client events

    def peers_changed(self, peers: tuple[Peer, ...]) -> None:
        """Show the peer list, one ``Nick (uid)`` a line, in join order, then
        the known users who are away (greyed, ``- away``), who can be
        written to as well."""
        if not self.peer_list.winfo_exists():
            return
        away = self.client.away if self.client.joined else ()
        self._shown_peers = peers + away
        listing = self.peer_list
        listing.delete(0, "end")
        listing.insert("end", *(f"{p.nickname} ({p.uid})" for p in peers))
        listing.insert("end", *(f"{p.nickname} ({p.uid}) - away" for p in away))
        for index in range(len(peers), len(peers) + len(away)):
            listing.itemconfigure(index, foreground=AWAY_COLOUR)

    def presence_changed(
        self, joined: tuple[Peer, ...], left: tuple[Peer, ...], first: bool
    ) -> None:
        """Say who is in the room on joining, then who joined and who left
        (a burst of changes in one line: see :mod:`muca.client.presence`)."""
        if first:
            if joined:
                self.log(room_line(joined))
            return
        if not joined and not left:
            return
        still_newest = self._presence_line == self.console_lines
        line, rewrite = self._presence.change(
            joined, left, self.reactor.seconds(), still_newest
        )
        if rewrite and self.console.winfo_exists():
            self.console.configure(state="normal")
            self.console.delete("1.0", "2.0")
            self.console.configure(state="disabled")
            self.console_lines -= 1
        self.log(line)
        self._presence_line = self.console_lines

    def send_refused(self, refusal: Refusal) -> None:
        """The server refused a message we sent: strike it out as not
        delivered and put its text back in the message box (all of it
        refused), or say whom it did not reach (some of it)."""
        message = refusal.message
        said = f"the server says {refusal.code}: {refusal.reason}"
        if refusal.partial:
            names = ", ".join(self.client.nickname_of(u) for u in message.undelivered)
            self.log_note(f"not delivered to {names}: {said}")
            return
        self._strike_out(message.serial)
        box = self.message_entry
        if box.winfo_exists():
            typed = box.get("1.0", "end-1c")
            box.insert("1.0", message.text + ("\n" if typed else ""))
            if not self.to_entry.get().strip():
                names = [self.client.nickname_of(u) for u in message.recipients]
                self.to_entry.insert(0, ", ".join(names) or ALL)
        self.log_error(f"not delivered: {said}; the text is back in the message box")

    def _strike_out(self, serial: int) -> None:
        """Mark our line of message ``serial`` as not delivered."""
        pane = self.messages
        if serial not in self._marked or not pane.winfo_exists():
            return
        self._marked.discard(serial)
        start = pane.index(f"s{serial}")
        end = pane.index(f"{start} lineend")
        pane.mark_unset(f"s{serial}")
        pane.configure(state="normal")
        pane.tag_add("refused", start, end)
        pane.insert(end, "  (not delivered)", ("own", "undelivered"))
        pane.configure(state="disabled")

    def message_received(self, message: ReceivedMessage) -> None:
        """Show a message, right-aligned, coloured by its type; count it in
        the title (and ring once per burst) while the window is not focused."""
        tag = KIND_TAGS.get(message.kind, "broadcast")
        # A room other than the default one is named; the default room's
        # lines are as they were before rooms.
        room = message.room
        where = f" in #{room}" if room and room != self.client.default_room else ""
        line = (
            f"{clock_time(message.timestamp_ms)}"
            f" [From: {message.sender_nickname}{where}] {message.text}"
        )
        current = self.room or self.client.default_room
        if room and room != current and not message.history:
            self.room_unread[room] = self.room_unread.get(room, 0) + 1
            self._draw_rooms()
        ident = message.ident
        if ident is None:
            prepend(self.messages, line, tag)
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
        self.room = None
        self.room_unread.clear()
        self._draw_rooms()
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
