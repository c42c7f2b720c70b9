"""Who a client knows of: the users in the room, the known users who are
away, and the nickname each user id last had.

The server's ``LIST`` and ``PRESENCE`` say who is in the room; with the
``known`` capability its ``KNOWN`` (right after the first ``LIST``) names
the user ids that joined before and are away, each with its last nickname,
most recently seen first. Users who are away can be written to only on a
server that authenticates (offline delivery), which is the case when
``KNOWN`` names anybody or when we joined with a password; from then on a
user who leaves the room is away, and one who joins is present again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from muca.protocol.messages import Peer

#: Most departed users remembered (the server sends at most this many).
MOST_DEPARTED = 1000


def parse_known(frame: dict[str, Any]) -> tuple[Peer, ...]:
    """The users of a ``KNOWN`` frame, skipping ill-formed entries."""
    data = frame.get("DATA")
    if not isinstance(data, list):
        return ()
    return tuple(
        Peer(entry["UN"], entry["UID"])
        for entry in data
        if isinstance(entry, dict)
        and isinstance(entry.get("UN"), str)
        and isinstance(entry.get("UID"), str)
    )


class Roster:
    """The room as one client sees it."""

    def __init__(self, me: str) -> None:
        #: Our own user id: never away to ourselves.
        self.me = me
        #: The users in the room, in join order.
        self.present: tuple[Peer, ...] = ()
        #: The server delivers to known users who are away (it authenticates).
        self.authenticating = False
        # Users who were here (or are known) and are not now: uid -> nickname,
        # the most recently seen last.
        self._departed: OrderedDict[str, str] = OrderedDict()

    @property
    def away(self) -> tuple[Peer, ...]:
        """Known users not in the room, most recently seen first; none on a
        server that does not deliver to them."""
        if not self.authenticating:
            return ()
        return tuple(Peer(n, u) for u, n in reversed(self._departed.items()))

    def set_present(
        self, peers: tuple[Peer, ...]
    ) -> tuple[tuple[Peer, ...], tuple[Peer, ...]]:
        """The room is now ``peers``; returns who joined and who left."""
        before = {peer.uid: peer for peer in self.present}
        now = {peer.uid for peer in peers}
        joined = tuple(peer for peer in peers if peer.uid not in before)
        left = tuple(peer for uid, peer in before.items() if uid not in now)
        for peer in left:
            self._remember(peer)
        for peer in peers:
            self._departed.pop(peer.uid, None)
        self.present = peers
        return joined, left

    def set_known(self, known: tuple[Peer, ...]) -> None:
        """``KNOWN``: these users are away (given most recent first)."""
        if known:
            self.authenticating = True
        here = {peer.uid for peer in self.present}
        for peer in reversed(known):
            if peer.uid not in here:
                self._remember(peer)

    def clear(self) -> None:
        """The connection ended: nobody is known to be here."""
        for peer in self.present:
            self._remember(peer)
        self.present = ()

    def nickname_of(self, uid: str) -> str:
        """The nickname a user id has in the room, else the last it had,
        else the id itself."""
        for peer in self.present:
            if peer.uid == uid:
                return peer.nickname
        return self._departed.get(uid, uid)

    def _remember(self, peer: Peer) -> None:
        if peer.uid == self.me:
            return
        departed = self._departed
        departed.pop(peer.uid, None)
        departed[peer.uid] = peer.nickname
        while len(departed) > MOST_DEPARTED:
            departed.popitem(last=False)
