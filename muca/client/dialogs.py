"""The Tk window's small dialog: ``/password`` asks the old and the new
password in a window of its own, with masked entries.

It is not modal (a modal dialog would stop the reactor, and all networking
with it): the chat window goes on while it is open, and it closes by itself
when its answer is taken or the chat window goes.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

from muca.client.panes import ENTRY_BACKGROUND


class PasswordDialog:
    """``Change password``: OLD and NEW (masked), then Change or Cancel.

    ``on_change(old, new)`` runs when Change is pressed (or Enter in NEW)
    with both filled; the dialog closes then, and on Cancel or Escape.
    """

    def __init__(
        self, master: tk.Misc, title: str, on_change: Callable[[str, str], None]
    ) -> None:
        self.on_change = on_change
        top = self.top = tk.Toplevel(master)
        top.title(title)
        top.resizable(False, False)
        window = master.winfo_toplevel()
        top.transient(window)
        # Over the chat window's messages pane, where it is looked at.
        top.geometry(f"+{window.winfo_rootx() + 40}+{window.winfo_rooty() + 60}")
        top.protocol("WM_DELETE_WINDOW", self.close)
        top.bind("<Escape>", lambda event: self.close())
        self.entries: dict[str, tk.Entry] = {}
        self._typed: list[tk.StringVar] = []
        for row, name in enumerate(("OLD PASSWORD", "NEW PASSWORD")):
            tk.Label(top, text=f"{name}:", font=("TkDefaultFont", 10, "bold")).grid(
                row=row, column=0, sticky="e", padx=(8, 2), pady=4
            )
            entry = tk.Entry(
                top,
                show="*",
                width=28,
                bg=ENTRY_BACKGROUND,
                relief="solid",
                highlightthickness=1,
                highlightbackground="black",
            )
            entry.grid(row=row, column=1, sticky="ew", padx=(2, 8), pady=4)
            self.entries[name] = entry
            # Whatever is typed (or pasted) clears the hint about what is missing.
            typed = tk.StringVar(top)
            typed.trace_add("write", lambda *_: self.hint.configure(text=""))
            entry.configure(textvariable=typed)
            self._typed.append(typed)
        self.old_entry = self.entries["OLD PASSWORD"]
        self.new_entry = self.entries["NEW PASSWORD"]
        self.old_entry.bind("<Return>", lambda event: self.new_entry.focus_set())
        self.new_entry.bind("<Return>", lambda event: self.submit())
        #: One line under the entries: what is missing.
        self.hint = tk.Label(top, text="", fg="#b00000")
        self.hint.grid(row=2, column=0, columnspan=2, sticky="w", padx=8)
        buttons = tk.Frame(top)
        buttons.grid(row=3, column=0, columnspan=2, sticky="e", padx=8, pady=(2, 8))
        self.change_button = tk.Button(
            buttons, text="Change", width=8, command=self.submit
        )
        self.cancel_button = tk.Button(
            buttons, text="Cancel", width=8, command=self.close
        )
        self.change_button.grid(row=0, column=0, padx=2)
        self.cancel_button.grid(row=0, column=1, padx=2)
        self.old_entry.focus_set()

    @property
    def open(self) -> bool:
        """True until the dialog closed."""
        return bool(self.top.winfo_exists())

    def submit(self) -> None:
        """Change: both passwords filled, hand them on and close."""
        old, new = self.old_entry.get(), self.new_entry.get()
        if not old or not new:
            self.hint.configure(text="type your old password and the new one")
            (self.old_entry if not old else self.new_entry).focus_set()
            return
        self.close()
        self.on_change(old, new)

    def close(self) -> None:
        """Close without changing anything (or after Change)."""
        if self.top.winfo_exists():
            self.top.destroy()
