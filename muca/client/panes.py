"""The Tk window's read-only panes (messages and console): their colours,
their build, and the whole-lines padding under them."""

from __future__ import annotations

import tkinter as tk

from muca.protocol.messages import ALL, GROUP, PRIVATE

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
    # A message of ours that the server refused: struck out, greyed.
    "refused": "#8c8c8c",
}
#: Users who are away, in the peer list.
AWAY_COLOUR = "#8c8c8c"
# Replayed messages: the colour of their type, dimmed (Tk has no alpha, so
# a paler shade of each).
HISTORY_COLOURS = {
    "private": "#e89090",
    "group": "#80b080",
    "broadcast": "#8080e0",
}


def make_pane(master: tk.Misc, row: int, height: int) -> tk.Text:
    """A read-only text pane with a scrollbar in grid ``row`` of ``master``,
    with a tag for each kind of line."""
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
    frame.bind("<Configure>", lambda event: _whole_lines(text, event))
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
    text.tag_configure("refused", overstrike=True)
    text.tag_configure("undelivered", foreground=TAG_COLOURS["error"])
    text.configure(state="disabled")
    return text


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


def prepend(pane: tk.Text, line: str, tag: str) -> None:
    """Put one entry at the top of a pane: the newest is always first."""
    if not pane.winfo_exists():
        return  # the window is gone; late events have nowhere to go
    pane.configure(state="normal")
    pane.insert("1.0", line + "\n", (tag,))
    pane.configure(state="disabled")


def pane_text(pane: tk.Text | tk.Listbox) -> str:
    """The whole text of a pane or list, a line per entry (for tests and scripts)."""
    if isinstance(pane, tk.Listbox):
        return "\n".join(pane.get(0, "end"))
    return pane.get("1.0", "end-1c")
