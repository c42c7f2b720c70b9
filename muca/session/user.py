"""The avatar of a login: a :class:`ChatUser` bound to its peer's
:class:`~muca.session.interfaces.IChatClient`, calling the node.

It holds what a session is (the user id proved at login, the member once
joined) and the checks every front-end needs alike (joined first, ``FROM``
is your own id); the node (``muca.server.node.ChatFactory``) holds what is
shared by all users.
"""

from __future__ import annotations

import typing

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from muca.protocol.messages import (
    ALREADY_JOINED,
    FROM_MISMATCH,
    NOT_JOINED,
    SERVER_FULL,
    Delete,
    Enter,
    Exit,
    History,
    Invite,
    Join,
    JoinRefused,
    Moderate,
    ProtocolError,
    Report,
    RoomCommand,
    RoomSet,
    Search,
    Send,
)
from muca.server.room import Member
from muca.session.interfaces import IChatClient, IChatUser

log = Logger()


class Node(typing.Protocol):
    """What a session needs of the node."""

    def join(self, client: IChatClient, join: Join) -> Member | Deferred[Member]:
        """Add a client to the room; refusals raise or fail with JoinRefused."""

    def joined(self, member: Member, join: Join) -> None:
        """The join is acknowledged: replay its history if asked."""

    def leave(self, member: Member, peer: str) -> None:
        """Remove a member whose session has ended."""

    def accept(self, sender: Member, send: Send) -> None:
        """Route and publish one ``SEND``; raises :class:`ProtocolError`."""

    def scroll_back(self, member: Member, request: History) -> None:
        """Answer ``HISTORY BEFORE``."""

    def search(self, member: Member, request: Search) -> None:
        """Answer ``SEARCH``."""

    def enter(self, member: Member, request: Enter) -> None:
        """Enter a room; raises :class:`ProtocolError`."""

    def exit(self, member: Member, request: Exit) -> None:
        """Leave a room; raises :class:`ProtocolError`."""

    def set_room(self, member: Member, request: RoomSet) -> None:
        """Change a room's settings; raises :class:`ProtocolError`."""

    def invite(self, member: Member, request: Invite) -> None:
        """Let a user into a room; raises :class:`ProtocolError`."""

    def moderate(self, member: Member, request: Moderate) -> None:
        """A moderation command; raises :class:`ProtocolError`."""

    def delete(self, member: Member, request: Delete) -> None:
        """``DELETE``; raises :class:`ProtocolError`."""

    def report(self, member: Member, request: Report) -> None:
        """``REPORT``; raises :class:`ProtocolError`."""


@implementer(IChatUser)
class ChatUser:
    """One login's user: joins, sends, reads history, leaves."""

    def __init__(self, node: Node, uid: str, client: IChatClient) -> None:
        self.node = node
        self.uid = uid
        self.client = client
        self.member: Member | None = None
        # Logged out: a join the node answers later is undone at once.
        self._gone = False
        self._joining = False

    def join(self, join: Join) -> Deferred[None]:
        """Join as ``join`` says (its ``UID`` is this user's id); the client
        is welcomed (``ACK``) then the node replays history, or it is refused."""
        client = self.client
        if self.member is not None or self._joining:
            client.refuse(
                join.uid,
                join.nickname,
                JoinRefused(ALREADY_JOINED, "you have already joined"),
            )
            return succeed(None)
        self._joining = True
        # The node answers at once, or (a cluster asks its shared registry) later.
        joined = maybeDeferred(self.node.join, client, join)
        joined.addCallbacks(self._joined, self._refused, (join,), None, (join,))
        return joined

    def _joined(self, member: Member, join: Join) -> None:
        self._joining = False
        if self._gone:
            # Logged out while the node decided: leave again.
            self.node.leave(member, self.client.peer)
            return
        self.member = member
        self.client.welcome(join)
        self.node.joined(member, join)

    def _refused(self, failure: Failure, join: Join) -> None:
        self._joining = False
        if self._gone:
            return
        refusal = failure.value
        if not isinstance(refusal, JoinRefused):
            log.failure("join of {uid!r}", failure, uid=join.uid)
            refusal = JoinRefused(SERVER_FULL, "the server could not take the join")
        self.client.refuse(join.uid, join.nickname, refusal)

    def send(self, send: Send) -> None:
        """Route one ``SEND`` from this user."""
        member = self.member
        client = self.client
        if member is None:
            not_joined(client, "SEND")
            return
        if send.sender != member.uid:
            client.send_error(
                FROM_MISMATCH, f"FROM must be your own user id {member.uid!r}", "SEND"
            )
            return
        try:
            self.node.accept(member, send)
        except ProtocolError as error:
            client.send_error(error.code, error.reason, error.ref)

    def history(self, request: History) -> None:
        """Scroll back: older messages, then a ``HISTORY MORE`` marker."""
        if self.member is None:
            not_joined(self.client, "HISTORY")
            return
        self.node.scroll_back(self.member, request)

    def search(self, request: Search) -> None:
        """Search what this user may read back: matches, then ``SEARCH MORE``."""
        if self.member is None:
            not_joined(self.client, "SEARCH")
            return
        self.node.search(self.member, request)

    def rooms(self, request: RoomCommand) -> None:
        """``ENTER``, ``EXIT``, ``ROOMSET`` or ``INVITE`` (a rooms client's;
        see ``muca.server.node``); refusals are the client's ``ERROR``."""
        member = self.member
        if member is None:
            return
        node = self.node
        try:
            if isinstance(request, Enter):
                node.enter(member, request)
            elif isinstance(request, Exit):
                node.exit(member, request)
            elif isinstance(request, RoomSet):
                node.set_room(member, request)
            else:
                node.invite(member, request)
        except ProtocolError as error:
            self.client.send_error(error.code, error.reason, error.ref)

    def moderate(self, request: Moderate | Delete | Report) -> None:
        """A moderation command, ``DELETE`` or ``REPORT`` (see ``muca.server.node``);
        refusals are the client's ``ERROR``."""
        member = self.member
        if member is None:
            return
        try:
            if isinstance(request, Delete):
                self.node.delete(member, request)
            elif isinstance(request, Report):
                self.node.report(member, request)
            else:
                self.node.moderate(member, request)
        except ProtocolError as error:
            self.client.send_error(error.code, error.reason, error.ref)

    def leave(self) -> None:
        """End the session: out of the room now (the others hear of it)."""
        self._gone = True
        member, self.member = self.member, None
        if member is not None:
            self.node.leave(member, self.client.peer)


def not_joined(client: IChatClient, command: str) -> None:
    """What a peer is told of a ``SEND``, ``HISTORY`` or ``SEARCH`` before
    it joined."""
    if command == "SEND":
        client.send_error(NOT_JOINED, "join the chat room before sending", "SEND")
    else:
        client.send_error(NOT_JOINED, "join the chat room first", command)
