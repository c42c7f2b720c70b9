"""MUCA clients: the client library (``client``, with what it raises in
``errors``, what it reports in ``observer``, where it connects in
``endpoint``, which sent message a refusal is about in ``sending``, who is
in the room or away in ``roster``, the rooms a server has in ``rooms``),
its config files (``config``), the Tk window (``gui``, with ``panes``,
``addressing``, ``presence`` and ``tkloop``), the ``muca-chat`` command
line (``cli``) and the four-window demo (``demo``).

The library's public names, for scripts and bots, are importable from here
(``from muca.client import ChatClient, ChatObserver``); their modules'
paths work as well.
"""

from muca.client.client import ChatClient
from muca.client.errors import (
    AccountRefused,
    CertificateRefused,
    ClientError,
    ConnectFailed,
    ConnectionClosed,
    MessageTooLong,
    NotConnected,
    RoomRefused,
    RoomsUnavailable,
)
from muca.client.observer import ChatObserver, ReceivedMessage
from muca.client.rooms import RoomInfo
from muca.client.sending import Refusal, SentMessage
from muca.protocol.messages import JoinRefused, Peer

__all__ = [
    "AccountRefused",
    "CertificateRefused",
    "ChatClient",
    "ChatObserver",
    "ClientError",
    "ConnectFailed",
    "ConnectionClosed",
    "JoinRefused",
    "MessageTooLong",
    "NotConnected",
    "Peer",
    "ReceivedMessage",
    "Refusal",
    "RoomInfo",
    "RoomRefused",
    "RoomsUnavailable",
    "SentMessage",
]
