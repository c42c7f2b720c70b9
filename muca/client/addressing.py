"""The Tk window's TO field: nicknames (or user ids) separated by ``,``, or
``ALL``, turned into the users a message goes to.

A name is a user in the room first (by nickname, then by user id), else a
known user who is away (``ChatClient.away``: only on a server that delivers
to them later). A private message to yourself or to nobody known is
refused; from a group, yourself and unknown names are left out, and the
note says what was done instead of what was asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from muca.protocol.messages import ALL, Peer


class AddressError(Exception):
    """Nothing can be sent to this TO; ``str()`` is the console line."""


@dataclass(frozen=True)
class Addressed:
    """Where a message goes: ``recipients`` (none: everyone), their names
    as the messages pane shows them, and a note ("" when none is due)."""

    recipients: tuple[Peer, ...]
    names: str
    note: str


def address(
    to_text: str, me: str, present: Sequence[Peer], away: Sequence[Peer]
) -> Addressed:
    """Resolve the TO field; raises :class:`AddressError` when nothing can
    be sent. ``me`` is our nickname."""
    if to_text == ALL:
        return Addressed((), ALL, "")
    names: list[str] = []
    for part in to_text.split(","):
        name = part.strip()
        if name and name not in names:
            names.append(name)
    found = _lookup(present, away)
    if len(names) == 1 and names[0] == me:
        raise AddressError("you cannot send a private message to yourself")
    unknown = [name for name in names if name != me and name not in found]
    chosen: list[Peer] = []
    for name in names:
        peer = found.get(name)
        if name != me and peer is not None and peer not in chosen:
            chosen.append(peer)
    if not chosen:
        raise AddressError(
            f"{listed(unknown) or 'nobody'} {is_are(unknown)} not in the"
            " chat room: nothing sent"
        )
    notes = []
    if me in names:
        notes.append("you are not sent your own message")
    if unknown:
        notes.append(f"{listed(unknown)} {is_are(unknown)} not in the room")
    gone = {peer.uid for peer in away} - {peer.uid for peer in present}
    later = [peer.nickname for peer in chosen if peer.uid in gone]
    if later:
        notes.append(
            f"{listed(later)} {is_are(later)} away and will get it on joining again"
        )
    names_text = ", ".join(peer.nickname for peer in chosen)
    note = ""
    if notes:
        kind = "PRIVATE" if len(chosen) == 1 else "GROUP"
        note = f"{'; '.join(notes)}; sent to {names_text} as {kind}"
    return Addressed(tuple(chosen), names_text, note)


def _lookup(present: Sequence[Peer], away: Sequence[Peer]) -> dict[str, Peer]:
    """Every name a TO entry may be, to the user it means: present users
    win over away ones, nicknames over user ids."""
    found: dict[str, Peer] = {}
    for peers in (present, away):
        for peer in peers:
            found.setdefault(peer.nickname, peer)
    for peers in (present, away):
        for peer in peers:
            found.setdefault(peer.uid, peer)
    return found


def listed(names: Sequence[str]) -> str:
    """``a, b, c``."""
    return ", ".join(names)


def is_are(names: Sequence[str]) -> str:
    """The verb for one name or several."""
    return "is" if len(names) == 1 else "are"
