"""The two sides of a session, in twisted.words' shape.

A front-end logs its peer in through the node's portal
(``muca.session.realm``), passing itself as the *mind*: an
:class:`IChatClient`. The realm hands back an :class:`IChatUser` bound to it.
The front-end turns its peer's frames into calls on the user; the user and
the node turn what happens into calls on the client, which the front-end
turns into frames. Neither side knows the other's wire.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IChatClient(Interface):
    """One peer as the session and the node reach it, whatever its wire.

    Objects handed to :meth:`send` are protocol payloads (``MSG``, ``LIST``,
    ``KNOWN``, ``HISTORY`` markers, ``ERROR``); :meth:`write_now` takes
    bytes the node encoded once for every peer of the same framing.
    """

    peer = Attribute("How the peer is named in logs (an address).")
    address = Attribute("The peer's IP address, or None (a UNIX socket).")
    framing = Attribute("The output framing (muca.protocol.wire.Framing).")

    def welcome(join):
        """``join`` is accepted: tell the peer (``ACK`` okay)."""

    def refuse(uid, nickname, refusal):
        """A join of ``uid`` as ``nickname`` is refused
        (a ``JoinRefused``): tell the peer (``ACK`` fail)."""

    def send(obj):
        """Write one payload to this peer only (a reply, a roster, a marker)."""

    def send_many(objs):
        """Write several payloads in one write; return the bytes written."""

    def send_error(code, reason, ref=None):
        """Write an ``ERROR``."""

    def write_now(data):
        """Write bytes already encoded for this peer's framing (fan-out)."""

    def accepted(message):
        """One of this peer's own messages (a ``ChatMessage``) was accepted
        and has its id: the node that delivers it says so to its sender's
        connection (IRC's ``echo-message`` echoes it; others ignore it).
        A broadcast that reached nobody and was not kept comes with id 0."""

    def stream(source):
        """Write a history a page at a time, as the peer reads it."""

    def hold_bytes(count):
        """The node holds ``count`` more bytes for this peer (fewer if < 0)."""

    def charge_answer(size):
        """An answer of ``size`` bytes went out: charge the rate limit."""

    def close(grace=None):
        """End the connection after what is written (e.g. a cluster that
        found the user id taken elsewhere); its session ends with it."""


class IChatUser(Interface):
    """A logged-in user: the avatar of the realm, one per login.

    Rooms (:meth:`rooms`) and, next, moderation are session calls a
    front-end makes, refused or answered through the user's
    :class:`IChatClient`.
    """

    uid = Attribute("The user id the login proved (or, anonymous, claimed).")
    member = Attribute("The room's member once joined, else None.")

    def join(join):
        """Join the chat room; the client is welcomed or refused. Returns
        a Deferred that fires (with None) once it is decided."""

    def send(send):
        """Route one ``SEND``; problems are the client's ``ERROR`` s."""

    def history(request):
        """Answer ``HISTORY BEFORE`` through the client."""

    def search(request):
        """Answer ``SEARCH`` through the client."""

    def rooms(request):
        """``ENTER``, ``EXIT``, ``ROOMSET`` or ``INVITE`` (a client with the
        ``rooms`` capability); problems are the client's ``ERROR`` s."""

    def moderate(request):
        """``KICK``, ``BAN``, ``UNBAN``, ``MUTE``, ``UNMUTE`` or
        ``MODERATOR``, or ``DELETE`` (a client with the ``moderation``
        capability);
        problems are the client's ``ERROR`` s."""

    def leave():
        """Leave the room (the logout of the login); safe to call twice."""
