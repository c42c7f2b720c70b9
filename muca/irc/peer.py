"""An IRC client: the IRC front-end of the session layer.

:class:`IrcPeer` is a ``muca.server.connection.ChatConnection`` like the TCP
and WebSocket front-ends, so that logins, the rate limit (fake lag), flow
control, slow readers and shutdown are the same code; and a
``twisted.words.protocols.irc.IRC`` for parsing and writing lines. Its
lines in become session calls: registration (``NICK``, ``USER``, ``PASS``,
``CAP``) is a MUCA ``JOIN`` with the ``rooms`` and ``presence-delta``
capabilities, ``JOIN``/``PART`` of ``#room`` are ``ENTER``/``EXIT``,
``PRIVMSG`` a ``SEND``. What the session and the node write to it (MUCA
payloads, as objects or as native-framed lines of a fan-out) becomes IRC
lines: ``ACK`` the welcome numerics, ``LIST`` and ``PRESENCE`` the
``JOIN``/``PART``/``QUIT`` of others and ``NAMES``, ``MSG`` ``PRIVMSG``,
``ERROR`` the numeric that says the same.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols import irc

import muca
from muca.irc.history import MAX_LIMIT, BadQuery, Query, RoomHistory, parse_query
from muca.irc.names import (
    CHANNELLEN,
    NICKLEN,
    USER_HOST,
    channel,
    irc_lower,
    irc_nick,
    user_part,
    valid_nick,
)
from muca.protocol import messages
from muca.protocol.messages import (
    ALL,
    MAX_TOPIC,
    ChatMessage,
    Join,
    JoinRefused,
    ProtocolError,
    parse_client_command,
    room_name,
)
from muca.protocol.wire import Framing
from muca.server.connection import ChatConnection, Phase
from muca.server.output import Payload

log = Logger()

#: The server's name in every line it writes (``:muca 001 …``).
SERVER = "muca"
#: The longest line a client may send, tags included (IRCv3: 4,096 bytes
#: of tags, then 512 of message); a longer one is answered 417 and dropped.
MAX_LINE = 4096 + 512
#: The longest line the server writes, tags aside, ``\r\n`` included.
LINE_LIMIT = 512
#: Targets one PRIVMSG or NOTICE may name, and channels one JOIN, PART or
#: NAMES (``TARGMAX``): one line costs one token of the rate limit.
MAX_TARGETS = 4
MAX_CHANNELS = 10
#: The capabilities this server offers (and, with a history, CHATHISTORY's).
CAPABILITIES = ("server-time", "message-tags", "echo-message", "batch")
CHATHISTORY = "draft/chathistory"
#: How a CTCP ACTION (``/me does``) starts: ``\x01ACTION does\x01``.
ACTION = "\x01ACTION "
#: CHATHISTORY requests one connection may have waiting for the store
#: (answered in turn; more are refused).
MAX_HISTORY_QUERIES = 4
#: Seconds of silence from a registered client after which it is pinged,
#: and seconds it then has to say anything before it is disconnected.
PING_AFTER = 120.0
PING_WAIT = 60.0
#: Messages sent with ``echo-message`` whose echo is awaited (older ones
#: were refused, or are dropped past this many).
MAX_ECHOES = 32

#: The longest SASL response, base64 (RFC 4616's three fields of at most
#: 255 bytes each).
MAX_SASL = 1600
#: The length of an AUTHENTICATE line's chunk that says more follows.
SASL_CHUNK = 400

#: The commands a client may send before it is registered.
_BEFORE_REGISTRATION = frozenset(
    {"CAP", "NICK", "USER", "PASS", "PING", "PONG", "QUIT", "AUTHENTICATE"}
)
#: The refusals of a ``JOIN`` after which the connection is closed.
_CLOSING_REFUSALS = frozenset(
    {
        messages.AUTH_FAILED,
        messages.SERVER_FULL,
        messages.SERVER_SHUTDOWN,
        messages.CLUSTER_UNAVAILABLE,
        messages.STORE_UNAVAILABLE,
    }
)
#: ``ERROR`` codes after which the server closes the connection itself.
_CLOSING_ERRORS = frozenset(
    {messages.SLOW_CONSUMER, messages.SERVER_FULL, messages.SERVER_SHUTDOWN}
)


@dataclass(frozen=True, slots=True)
class Line:
    """One line a client sent: its command (upper case) and parameters
    (its tags, if any, are not used)."""

    command: str
    params: list[str]


class _TooLong:
    """A line over :data:`MAX_LINE`, dropped."""


class _Malformed:
    """A line that is not an IRC message."""


TOO_LONG = _TooLong()
MALFORMED = _Malformed()


def parse_line(raw: bytes) -> Line | _Malformed | None:
    """One line (without its ``\\n``) as a :class:`Line`; None for a blank
    line (ignored, as IRC servers do)."""
    raw = raw.rstrip(b"\r")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Older clients write Latin-1; every byte is a character there.
        text = raw.decode("latin-1")
    text = text.replace("\0", "").strip(" ")
    if not text:
        return None
    if text.startswith("@"):
        _, _, text = text.partition(" ")
        text = text.lstrip(" ")
    try:
        _, command, params = irc.parsemsg(text)
    except (irc.IRCBadMessage, ValueError, IndexError):
        return MALFORMED
    if not command.isalnum():
        return MALFORMED
    return Line(command.upper(), params)


def split_text(text: str, room: int) -> list[str]:
    """``text`` as lines of at most ``room`` UTF-8 bytes each, cut between
    characters (never inside one) and at its newlines; empty lines dropped."""
    pieces: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        data = line.encode("utf-8")
        while len(data) > room:
            cut = room
            # Back to the start of a character: never 10xxxxxx.
            while cut > 0 and data[cut] & 0xC0 == 0x80:
                cut -= 1
            pieces.append(data[:cut].decode("utf-8"))
            data = data[cut:]
        if data:
            pieces.append(data.decode("utf-8"))
    return pieces


def server_time(ms: int) -> str:
    """IRCv3 ``server-time``: ``2026-12-08T00:17:46.123Z``."""
    seconds, millis = divmod(int(ms), 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{millis:03d}Z"


def _clean(text: str) -> str:
    """A parameter of a line: no CR, LF or NUL (a topic may hold them)."""
    return text.replace("\r", " ").replace("\n", " ").replace("\0", "")


def _middle(text: str) -> str:
    """A middle parameter: not empty, no space, not starting with ``:``."""
    text = _clean(text).replace(" ", "_")
    return "*" + text if not text or text.startswith(":") else text


@dataclass
class Channel:
    """A channel this client is in: its members by user id (their IRC
    nicks), in the order the roster gave them."""

    room: str
    members: dict[str, str] = field(default_factory=dict)
    #: Its first roster has come (NAMES was sent).
    listed: bool = False

    @property
    def name(self) -> str:
        """The channel's IRC name."""
        return channel(self.room)


class IrcPeer(ChatConnection, irc.IRC):
    """One IRC connection (see the module's text)."""

    def __init__(self, node: Any) -> None:
        super().__init__()
        self.factory = node
        self.framing = Framing.IRC
        #: What registration has gathered.
        self.nick: str | None = None
        self._username: str | None = None
        self._password: str | None = None
        self._negotiating = False
        #: Capabilities the client enabled.
        self.caps: set[str] = set()
        #: Registered (the MUCA join accepted).
        self.registered = False
        self.away: str | None = None
        self.modes = ""
        self.uid: str | None = None
        #: The user id SASL proved (None: none yet; the nick is the id).
        self.account: str | None = None
        #: A SASL mechanism under way, and its response so far.
        self._sasl: str | None = None
        self._sasl_data = ""
        self._sasl_login = False
        #: Channels it is in, by room name.
        self.channels: dict[str, Channel] = {}
        #: The default room's first roster has come (entered at registration).
        self._default_listed = False
        #: Rooms as the last ``ROOMS`` showed them, by name.
        self.listing: dict[str, dict[str, Any]] = {}
        #: What the session's ERROR answers: the command and its target.
        self._context: tuple[str, str] = ("", "")
        self._notice = False
        self._refused_now = False
        self._out: list[bytes] = []
        self._buffer = bytearray()
        self._dropping = False
        self._pinged = False
        #: What its lines of a room's message depend on, the tags it
        #: enabled: the outbox shares them among clients with the same key.
        self.shared_key = (False, False)
        #: Lines sent with echo-message not echoed yet: (command, target,
        #: text, the MUCA message's text), in the order they were sent.
        self._echoes: deque[tuple[str, str, str, str]] = deque(maxlen=MAX_ECHOES)
        #: CHATHISTORY requests not answered yet, the first being read.
        self._queries: deque[Query] = deque()
        #: The batch the lines being written belong to, and the last one.
        self._batch: str | None = None
        self._batches = 0

    # The wire

    def connectionMade(self) -> None:  # noqa: N802
        """Connected: count in (not IRC.connectionMade: no DNS lookup)."""
        self._start(self.transport)

    def _register(self) -> None:
        self.transport.registerProducer(self, True)

    def _unregister(self) -> None:
        self.transport.unregisterProducer()

    def _lose(self) -> None:
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        """Cut lines (each at most :data:`MAX_LINE` bytes held), parse them
        and hand them on to wait for the rate limit, as MUCA frames do."""
        if self._closing:
            return
        if self.registered:
            # Silence is watched anew (PING_AFTER again after a PING).
            if self._pinged:
                self._pinged = False
                self.setTimeout(PING_AFTER)
            else:
                self.resetTimeout()
        buffer = self._buffer
        buffer += data
        frames: list[Any] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            raw = bytes(buffer[start:end])
            start = end + 1
            if self._dropping:
                self._dropping = False
                continue
            if len(raw) > MAX_LINE:
                frames.append(TOO_LONG)
                continue
            line = parse_line(raw)
            if line is not None:
                frames.append(line)
        del buffer[:start]
        if len(buffer) > MAX_LINE:
            if not self._dropping:
                frames.append(TOO_LONG)
            self._dropping = True
            buffer.clear()
        if frames:
            self.frames_received(frames)

    def sendLine(self, line: str) -> None:  # noqa: N802
        """Queue one line: written with the others of this turn's work."""
        self._out.append(line.encode("utf-8") + b"\r\n")

    def _flush_out(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            ChatConnection.write_now(self, data)

    def _say(
        self,
        command: str,
        *params: str,
        prefix: str = SERVER,
        tags: dict[str, str] | None = None,
    ) -> None:
        """One line; its last parameter trailing (after ``:``), the others
        made middle parameters (a client's own words echoed in them, e.g.
        an empty or ``:x`` target, cannot shift the line's fields)."""
        items = [_middle(p) for p in params[:-1]]
        if params:
            items.append(":" + _clean(params[-1]))
        self.sendCommand(command, items, prefix, tags or None)

    def _numeric(self, code: str, *params: str) -> None:
        self._say(code, self.nick or "*", *params)

    # What the session and the node write: MUCA payloads, as IRC lines

    def send(self, obj: dict[str, Any]) -> None:
        """One payload for this client alone, as IRC lines."""
        outbox = self.factory.outbox
        if outbox:
            outbox.flush_one(self)
        self._translate(obj)
        self._flush_out()

    def send_many(self, objs: list[dict[str, Any]]) -> int:
        """Several payloads, in one write; the bytes written."""
        outbox = self.factory.outbox
        if outbox:
            outbox.flush_one(self)
        for obj in objs:
            self._translate(obj)
        size = sum(len(line) for line in self._out)
        self._flush_out()
        return size

    def write_now(self, data: bytes) -> None:
        """Lines made for this client (the outbox's, see :meth:`render`), or
        natively framed payloads (a ``ROOMS`` listing), translated now: a
        MUCA line starts with ``{``, no IRC line does."""
        if not data.startswith(b"{"):
            ChatConnection.write_now(self, data)
            return
        for raw in data.splitlines():
            if raw:
                self._translate(json.loads(raw))
        self._flush_out()

    def render(self, payload: Payload) -> bytes:
        """A fan-out's payload as this client's IRC lines. A message's are
        made once for all the IRC clients that show it alike (its sender,
        its target, the tags they enabled): not decoded and translated
        again for each of 500 recipients."""
        obj = payload.obj
        if obj is None:
            obj = payload.obj = json.loads(payload.native())
        if obj.get("CMD") != "MSG":
            # Rosters and the like change this client's view: each its own.
            return self.encode([obj])
        data = self.encode([obj])
        if obj.get("TYPE") == ALL:
            # A room's message is the same line for every client with the
            # same tags (a MUCA nickname is fixed for a session, so its
            # sender's mask is the same for all); the outbox looks it up
            # by shared_key before it asks here.
            shared = payload.shared
            if shared is None:
                shared = payload.shared = {}
            shared[self.shared_key] = data
        return data

    def _caps_changed(self) -> None:
        caps = self.caps
        self.shared_key = ("server-time" in caps, "message-tags" in caps)

    def encode(self, objs: list[dict[str, Any]]) -> bytes:
        """Payloads written past the lines of this turn (a history page, the
        last words to a slow reader), as IRC lines."""
        kept, self._out = self._out, []
        try:
            for obj in objs:
                self._translate(obj)
            return b"".join(self._out)
        finally:
            self._out = kept

    def _translate(self, obj: dict[str, Any]) -> None:
        handler = _PAYLOADS.get(obj.get("CMD", ""))
        if handler is not None:
            handler(self, obj)

    def _on_ack(self, obj: dict[str, Any]) -> None:
        if obj.get("TYPE") == "OKAY":
            self._welcome()
        elif self._sasl_login and obj.get("CODE") == messages.AUTH_FAILED:
            self._numeric("904", "SASL authentication failed")
        else:
            self._refused(obj.get("CODE", ""), obj.get("REASON", ""))

    def _welcome(self) -> None:
        nick = self.nick or "*"
        self.registered = True
        self._numeric(
            "001", f"Welcome to the MUCA chat, {nick}!{self._user()}@{USER_HOST}"
        )
        self._numeric("002", f"Your host is {SERVER}, running muca-{muca.__version__}")
        self._numeric("003", "This server speaks MUCA; its rooms are channels")
        self._say("004", nick, SERVER, f"muca-{muca.__version__}", "i", "nt")
        self._say(
            "005",
            nick,
            "CHANTYPES=#",
            "CASEMAPPING=rfc1459",
            f"NICKLEN={NICKLEN}",
            f"CHANNELLEN={CHANNELLEN}",
            f"TOPICLEN={MAX_TOPIC}",
            "PREFIX=(o)@",
            f"TARGMAX=PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS},"
            f"JOIN:{MAX_CHANNELS},PART:{MAX_CHANNELS},NAMES:{MAX_CHANNELS}",
            "CHANMODES=b,,,int",
            "NETWORK=MUCA",
            "are supported by this server",
        )
        if self.factory.store is not None:
            self._say(
                "005",
                nick,
                f"CHATHISTORY={MAX_LIMIT}",
                "MSGREFTYPES=msgid,timestamp",
                "are supported by this server",
            )
        self._numeric("375", f"- {SERVER} Message of the day -")
        self._numeric(
            "372",
            "- MUCA rooms are channels: /join #room enters one, /list shows them.",
        )
        self._numeric("376", "End of /MOTD command.")

    def _refused(self, code: str, reason: str) -> None:
        wanted = self.nick or "*"
        if code in (messages.NICK_TAKEN, messages.UID_TAKEN):
            self._say("433", "*", wanted, f"Nickname is already in use: {reason}")
        elif code == messages.BAD_JOIN:
            self._say("432", "*", wanted, f"Erroneous nickname: {reason}")
        elif code == messages.AUTH_FAILED:
            self._say("464", "*", "Password incorrect")
        if code in _CLOSING_REFUSALS:
            self._closing_link(reason or code)
        else:
            # Registration starts again with the next NICK.
            self.nick = None

    def _closing_link(self, reason: str) -> None:
        self._say("ERROR", f"Closing Link: {self.peer} ({reason})", prefix="")
        self._flush_out()
        self.close()

    def _on_rooms(self, obj: dict[str, Any]) -> None:
        self.listing = {
            entry["ROOM"]: entry for entry in obj.get("DATA", []) if "ROOM" in entry
        }

    def _room_of(self, obj: dict[str, Any]) -> str:
        return obj.get("ROOM") or self.factory.config.default_room

    def _on_entered(self, obj: dict[str, Any]) -> None:
        """In a room: JOIN and its topic now, NAMES with its first roster."""
        room = obj["ROOM"]
        self._set_topic(room, obj.get("TOPIC", ""))
        self._entered(room)

    def _set_topic(self, room: str, topic: str) -> None:
        self.listing.setdefault(room, {"ROOM": room, "COUNT": 0})["TOPIC"] = topic

    def _entered(self, room: str) -> Channel:
        here = self.channels[room] = Channel(room)
        self._say("JOIN", here.name, prefix=self._mask(self.uid or ""))
        self._topic_reply(here)
        return here

    def _on_list(self, obj: dict[str, Any]) -> None:
        room = self._room_of(obj)
        members = {}
        for entry in obj.get("DATA", []):
            members[entry["UID"]] = irc_nick(entry["UN"], entry["UID"])
        here = self.channels.get(room)
        if here is None:
            if self._default_listed or room != self.factory.config.default_room:
                return  # a room left meanwhile
            # The default room, entered at registration.
            self._default_listed = True
            here = self._entered(room)
        if not here.listed:
            here.listed = True
            here.members = members
            self._names(here)
            return
        for uid in [uid for uid in here.members if uid not in members]:
            self._gone(here, uid)
        for uid, nick in members.items():
            if uid not in here.members:
                self._arrived(here, uid, nick)

    def _topic_reply(self, here: Channel) -> None:
        topic = self.listing.get(here.room, {}).get("TOPIC", "")
        if topic:
            self._numeric("332", here.name, topic)
        else:
            self._numeric("331", here.name, "No topic is set")

    def _names(self, here: Channel) -> None:
        owner = self._owner(here.room)
        names = [
            ("@" if uid == owner else "") + nick for uid, nick in here.members.items()
        ]
        start = f":{SERVER} 353 {self.nick} = {here.name} :"
        room = LINE_LIMIT - 2 - len(start.encode())
        chunk: list[str] = []
        size = 0
        for name in names:
            if chunk and size + len(name) + 1 > room:
                self._say("353", self.nick or "*", "=", here.name, " ".join(chunk))
                chunk, size = [], 0
            chunk.append(name)
            size += len(name) + 1
        if chunk:
            self._say("353", self.nick or "*", "=", here.name, " ".join(chunk))
        self._numeric("366", here.name, "End of /NAMES list.")

    def _owner(self, room: str) -> str | None:
        found = self.factory.room.rooms.get(room)
        return None if found is None else found.owner

    def _on_presence(self, obj: dict[str, Any]) -> None:
        here = self.channels.get(self._room_of(obj))
        if here is None or not here.listed:
            return
        for entry in obj.get("JOINED", []):
            nick = irc_nick(entry["UN"], entry["UID"])
            if entry["UID"] not in here.members:
                self._arrived(here, entry["UID"], nick)
        for uid in obj.get("LEFT", []):
            if uid in here.members:
                self._gone(here, uid)

    def _arrived(self, here: Channel, uid: str, nick: str) -> None:
        here.members[uid] = nick
        if uid != self.uid:
            self._say("JOIN", here.name, prefix=self._mask(uid))

    def _gone(self, here: Channel, uid: str) -> None:
        """A user left a channel: PART, or QUIT once when it left the server."""
        mask = self._mask(uid)
        if uid in self.factory.room:
            del here.members[uid]
            self._say("PART", here.name, "left the room", prefix=mask)
            return
        for other in self.channels.values():
            other.members.pop(uid, None)
        self._say("QUIT", "left the chat", prefix=mask)

    def _on_topic(self, obj: dict[str, Any]) -> None:
        room = obj["ROOM"]
        topic = obj.get("TOPIC", "")
        self._set_topic(room, topic)
        if room in self.channels:
            self._say(
                "TOPIC", channel(room), topic, prefix=self._mask(obj.get("BY", ""))
            )

    def _on_msg(self, obj: dict[str, Any]) -> None:
        sender = obj.get("FROM", "")
        text = obj.get("MSG", "")
        mask = self._mask(sender)
        if obj.get("TYPE") == ALL:
            target = channel(self._room_of(obj))
        elif sender == self.uid:
            return  # a private message of ours played back: to whom is not said
        else:
            target = self.nick or "*"
        ts = obj.get("TS")
        action = False
        if text.startswith("* "):
            # "* nick does": its sender's /me (CTCP ACTION).
            nickname = obj.get("UN") or self._nickname(sender)
            head = f"* {nickname} "
            if nickname and text.startswith(head) and len(text) > len(head):
                text, action = text[len(head) :], True
        if obj.get("HIST"):
            # Played back after joining, as a bouncer does: its sender as it
            # was named then, and its time in the text for clients that
            # cannot show server-time.
            nickname = obj.get("UN") or sender
            if sender != self.uid:
                mask = f"{irc_nick(nickname, sender)}!{user_part(sender)}@{USER_HOST}"
            if "server-time" not in self.caps and ts is not None:
                text = f"[{server_time(ts)[:16].replace('T', ' ')}] {text}"
        if action:
            text = f"{ACTION}{text}\x01"
        tags = self._tags(ts, obj.get("ID"))
        self._privmsg(mask, target, text, tags)

    def _nickname(self, uid: str) -> str | None:
        """The MUCA nickname of a user here (None: not known)."""
        if uid == self.uid:
            return self.nick
        member = self.factory.room.member(uid)
        return None if member is None else member.nickname

    def accepted(self, message: ChatMessage) -> None:
        """One of this user's messages accepted: with ``echo-message``, the
        line it sent, with the message's time and id (none when it reached
        nobody and was not kept: id 0)."""
        echoes = self._echoes
        while echoes:
            command, target, text, said = echoes.popleft()
            if said == message.text:
                break
        else:
            return  # not sent over IRC with echo-message
        outbox = self.factory.outbox
        if outbox:
            outbox.flush_one(self)
        tags = self._tags(message.ts, message.id or None)
        self._privmsg(self._mask(message.sender), target, text, tags, command)
        self._flush_out()

    def _privmsg(
        self,
        mask: str,
        target: str,
        text: str,
        tags: dict[str, str] | None,
        command: str = "PRIVMSG",
    ) -> None:
        """Text as lines of at most :data:`LINE_LIMIT` bytes each (a CTCP
        ACTION's body cut so, each piece an ACTION)."""
        head = f":{mask} {command} {target} :"
        room = LINE_LIMIT - 2 - len(head.encode("utf-8"))
        if text.startswith(ACTION):
            body = text[len(ACTION) :].removesuffix("\x01")
            pieces = [
                f"{ACTION}{piece}\x01"
                for piece in split_text(body, room - len(ACTION) - 1)
            ]
        else:
            pieces = split_text(text, room)
        for piece in pieces:
            self.sendCommand(command, [target, ":" + piece], mask, tags or None)

    def _tags(self, ts: int | None, ident: int | None) -> dict[str, str]:
        tags: dict[str, str] = {}
        if self._batch is not None:
            tags["batch"] = self._batch
        if ts is not None and "server-time" in self.caps:
            tags["time"] = server_time(ts)
        if ident is not None and "message-tags" in self.caps:
            tags["msgid"] = str(ident)
        return tags

    def _on_error(self, obj: dict[str, Any]) -> None:
        code = obj.get("CODE", "")
        reason = obj.get("REASON", "")
        self._refused_now = True
        if code in _CLOSING_ERRORS:
            self._say("ERROR", f"Closing Link: {self.peer} ({reason})", prefix="")
            return
        if self._notice:
            return  # no automatic reply to a NOTICE
        command, target = self._context
        numeric = _ERROR_NUMERICS.get((command, code)) or _ERROR_NUMERICS.get(
            ("", code)
        )
        if numeric is not None and target:
            self._numeric(numeric, target, reason)
        elif code == messages.ALREADY_IN_ROOM:
            pass
        else:
            self._say("NOTICE", self.nick or "*", f"{code}: {reason}")

    # Names

    def _user(self) -> str:
        return user_part(self.uid or self._username or "user")

    def _nick_of(self, uid: str) -> str:
        """How IRC shows the user ``uid``: as its channels here list it, or
        as the node's directory names it (a user in none of them)."""
        for here in self.channels.values():
            nick = here.members.get(uid)
            if nick is not None:
                return nick
        member = self.factory.room.member(uid)
        if member is None:
            return irc_nick(uid, uid)
        return irc_nick(member.nickname, uid)

    def _mask(self, uid: str) -> str:
        if uid == self.uid and self.nick:
            return f"{self.nick}!{self._user()}@{USER_HOST}"
        return f"{self._nick_of(uid)}!{user_part(uid)}@{USER_HOST}"

    def _uid_of(self, nick: str) -> str | None:
        """The user id of the user IRC shows as ``nick`` (rfc1459 case)."""
        wanted = irc_lower(nick)
        # Most often the nick is the user id (an IRC user's): found at once.
        member = self.factory.room.member(nick)
        if member is not None and (
            irc_lower(irc_nick(member.nickname, member.uid)) == wanted
        ):
            return member.uid
        for here in self.channels.values():
            for uid, known in here.members.items():
                if irc_lower(known) == wanted:
                    return uid
        for member in self.factory.room.members():
            if irc_lower(irc_nick(member.nickname, member.uid)) == wanted:
                return member.uid
        return None

    # Lines in: IRC commands as session calls

    def _handle_frame(self, frame: Any) -> None:
        outbox = self.factory.outbox
        if outbox:
            # What this turn's fan-out queued goes out before any answer.
            outbox.flush_one(self)
        try:
            self._handle_line(frame)
            # An answer costs the rate limit by its size, as HISTORY's does
            # (NAMES, WHO, LIST of a large server).
            self.charge_answer(sum(len(line) for line in self._out))
        except Exception:
            log.failure("unexpected error handling a line from {peer}", peer=self.peer)
            self._say("NOTICE", self.nick or "*", "the server could not handle this")
        finally:
            self._context = ("", "")
            self._notice = False
        self._flush_out()

    def _handle_line(self, frame: Any) -> None:
        if self._closing:
            return
        if self.phase is Phase.REFUSED:
            self._closing_link(self._refusal or "the server is full")
            return
        if frame is TOO_LONG:
            self._numeric("417", "Input line was too long")
            return
        if frame is MALFORMED:
            self._say("NOTICE", self.nick or "*", "Malformed line ignored")
            return
        command = frame.command
        if not self.registered and command not in _BEFORE_REGISTRATION:
            self._numeric("451", "You have not registered")
            return
        handler = _COMMANDS.get(command)
        if handler is None:
            self._numeric("421", command[:32], "Unknown command")
            return
        wanted, run = handler
        if len(frame.params) < wanted:
            self._numeric("461", command, "Not enough parameters")
            return
        run(self, frame.params)

    def irc_CAP(self, params: list[str]) -> None:  # noqa: N802
        """Capability negotiation (IRCv3 ``CAP LS 302``, ``REQ``, ``END``)."""
        sub = params[0].upper()
        who = self.nick if self.registered and self.nick else "*"
        if sub == "LS":
            if not self.registered:
                self._negotiating = True
            version = params[1] if len(params) > 1 else ""
            self._say("CAP", who, "LS", " ".join(self._offered(version)))
        elif sub == "LIST":
            self._say("CAP", who, "LIST", " ".join(sorted(self.caps)))
        elif sub == "REQ":
            if not self.registered:
                self._negotiating = True
            asked = params[1].split() if len(params) > 1 else []
            offered = [cap.partition("=")[0] for cap in self._offered("")]
            if asked and all(cap.lstrip("-") in offered for cap in asked):
                for cap in asked:
                    if cap.startswith("-"):
                        self.caps.discard(cap[1:])
                    else:
                        self.caps.add(cap)
                self._caps_changed()
                self._say("CAP", who, "ACK", " ".join(asked))
            else:
                self._say("CAP", who, "NAK", " ".join(asked))
        elif sub == "END":
            self._negotiating = False
            self._try_register()
        else:
            self._say("410", who, sub[:32], "Invalid CAP command")

    def _offered(self, version: str) -> list[str]:
        """The capabilities of ``CAP LS``: SASL PLAIN on a server with
        ``--auth`` (named with its mechanism for ``CAP LS 302``)."""
        offered = list(CAPABILITIES)
        if self.factory.store is not None:
            offered.append(CHATHISTORY)
        if self.factory.portal is not None:
            cap_302 = version.isdigit() and int(version) >= 302
            offered.append("sasl=PLAIN" if cap_302 else "sasl")
        return offered

    def irc_AUTHENTICATE(self, params: list[str]) -> None:  # noqa: N802
        """SASL PLAIN (RFC 4616): the password checked by a MUCA login
        (its throttle included) before registration ends."""
        if self.registered or self.account is not None:
            self._numeric("907", "You have already authenticated using SASL")
            return
        if "sasl" not in self.caps:
            self._numeric("904", "SASL authentication failed: CAP REQ sasl first")
            return
        value = params[0]
        if value == "*":
            self._sasl, self._sasl_data = None, ""
            self._numeric("906", "SASL authentication aborted")
            return
        if self._sasl is None:
            if value.upper() != "PLAIN":
                self._numeric("908", "PLAIN", "are available SASL mechanisms")
                self._numeric("904", "SASL authentication failed")
                return
            self._sasl = "PLAIN"
            self.sendLine("AUTHENTICATE +")
            return
        if value != "+":
            self._sasl_data += value
        if len(self._sasl_data) > MAX_SASL:
            self._sasl, self._sasl_data = None, ""
            self._numeric("905", "SASL message too long")
            return
        if len(value) == SASL_CHUNK:
            return  # more follows
        data, self._sasl, self._sasl_data = self._sasl_data, None, ""
        self._sasl_plain(data)

    def _sasl_plain(self, data: str) -> None:
        try:
            fields = base64.b64decode(data, validate=True).decode("utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError):
            fields = []
        if len(fields) != 3 or self.phase is not Phase.CONNECTED:
            self._numeric("904", "SASL authentication failed")
            return
        authzid, account, password = fields
        if authzid and authzid != account:
            self._numeric("904", "SASL authentication failed: authzid is not yours")
            return
        # Clients may authenticate before they send NICK: the login needs
        # only the user id and the password.
        request = {"CMD": "JOIN", "UN": self.nick or account, "UID": account}
        try:
            join = parse_client_command({**request, "PASS": password})
        except JoinRefused:
            self._numeric("904", "SASL authentication failed")
            return
        assert isinstance(join, Join)
        # The throttle and the portal of every login, without joining yet:
        # the join follows at CAP END.
        self.phase = Phase.LOGGING_IN
        self._sasl_login = True
        login = self.factory.entrance.log_in(self, join)
        login.addCallback(self._sasl_proved, join)
        login.addErrback(self._login_broke, join)
        if self.phase is Phase.LOGGING_IN:
            self._login = login
            login.addBoth(self._decided)

    def _sasl_proved(self, login: tuple[Any, Any] | None, join: Join) -> None:
        self._login = None
        self._sasl_login = False
        if login is None:
            return  # refused: 904 said
        user, logout = login
        if self._closing:
            logout()
            return
        self.user, self._logout = user, logout
        self.phase = Phase.CONNECTED
        self.account = join.uid
        mask = f"{self.nick or '*'}!{user_part(join.uid)}@{USER_HOST}"
        self._numeric("900", mask, join.uid, f"You are now logged in as {join.uid}")
        self._numeric("903", "SASL authentication successful")
        self._flush_out()

    def irc_NICK(self, params: list[str]) -> None:  # noqa: N802
        """Choose the nickname (before registration only)."""
        if not params or not params[0]:
            self._numeric("431", "No nickname given")
            return
        nick = params[0]
        if self.registered:
            if nick != self.nick:
                self._numeric(
                    "447", "Nickname changes are not supported: reconnect to change"
                )
            return
        if not valid_nick(nick):
            self._numeric("432", nick[:NICKLEN], "Erroneous nickname")
            return
        self.nick = nick
        self._try_register()

    def irc_USER(self, params: list[str]) -> None:  # noqa: N802
        """The user name (before registration only; the real name is not
        kept: WHOIS shows the MUCA user id there)."""
        if self.registered or self._username is not None:
            self._numeric("462", "You may not reregister")
            return
        self._username = params[0]
        self._try_register()

    def irc_PASS(self, params: list[str]) -> None:  # noqa: N802
        """The password of a server with ``--auth``."""
        if self.registered:
            self._numeric("462", "You may not reregister")
            return
        self._password = params[0]

    def _try_register(self) -> None:
        """NICK and USER given and capabilities settled: the MUCA join."""
        if (
            self.registered
            or self._negotiating
            or self.nick is None
            or self._username is None
            or self.phase is not Phase.CONNECTED
        ):
            return
        if self._uid_of(self.nick) is not None:
            # Taken, or only case apart (rfc1459), or a MUCA nickname's IRC
            # form: IRC could not tell the two apart.
            self._refused(
                messages.NICK_TAKEN, "IRC compares nicks without regard to case"
            )
            return
        if self.account is not None and self.user is not None:
            # SASL proved the account: join as it, with no second login.
            join = self._join_request(self.account, None)
            if join is None:
                return
            self.uid = join.uid
            self.phase = Phase.LOGGING_IN
            self._joining = join
            joined = self._logged_in((self.user, self._logout), join)
            if self.phase is Phase.LOGGING_IN and joined is not None:
                joined.addBoth(self._decided)
            return
        join = self._join_request(self.nick, self._password)
        if join is None:
            return
        self.uid = join.uid
        self._join(join)

    def _join_request(self, uid: str, password: str | None) -> Join | None:
        """The MUCA ``JOIN`` of this nick as ``uid``, or None once the client
        has been told why it is no valid one."""
        request: dict[str, Any] = {
            "CMD": "JOIN",
            "UN": self.nick,
            "UID": uid,
            "V": 2,
            "CAPS": [messages.ROOMS, messages.PRESENCE_DELTA],
        }
        if CHATHISTORY not in self.caps:
            # Played back at registration and on joining, as a bouncer does;
            # a client with draft/chathistory asks for what it wants.
            request["CAPS"].append(messages.HISTORY)
        if password is not None:
            request["PASS"] = password
        try:
            join = parse_client_command(request)
        except JoinRefused as refusal:
            self._refused(refusal.code, refusal.reason)
            return None
        assert isinstance(join, Join)
        return join

    def welcome(self, join: Join) -> None:
        """Registered: the welcome numerics, then silence is watched."""
        super().welcome(join)
        if not self._closing:
            self.setTimeout(PING_AFTER)

    def irc_PING(self, params: list[str]) -> None:  # noqa: N802
        """``PONG`` with the client's token."""
        if not params:
            self._numeric("409", "No origin specified")
            return
        self._say("PONG", SERVER, params[0])

    def irc_PONG(self, params: list[str]) -> None:  # noqa: N802
        """An answer to our ``PING``: the client is there (see dataReceived)."""

    def irc_QUIT(self, params: list[str]) -> None:  # noqa: N802
        """Leave: the others see the user leave the rooms."""
        reason = params[0] if params else "Client quit"
        self._say("ERROR", f"Closing Link: {self.peer} (Quit: {reason})", prefix="")
        self._flush_out()
        self.close()

    def _channel_room(self, name: str) -> str | None:
        """The room a channel names, or None once the client is told why not."""
        if not name.startswith("#"):
            self._numeric("403", name[:CHANNELLEN], "No such channel")
            return None
        try:
            return room_name(name, "ENTER")
        except ProtocolError:
            self._numeric("479", name[:CHANNELLEN], "Illegal channel name")
            return None

    def _session(self, command: str, target: str, request: dict[str, Any]) -> bool:
        """A rooms command or a ``SEND`` through the session; False when
        it was refused (the client told so)."""
        assert self.user is not None
        self._context = (command, target)
        self._refused_now = False
        try:
            parsed = parse_client_command(request, rooms=True)
        except ProtocolError as error:
            self._on_error(messages.error_payload(error.code, error.reason))
            return False
        if isinstance(parsed, messages.Send):
            self.user.send(parsed)
        else:
            self.user.rooms(parsed)  # type: ignore[arg-type]
        return not self._refused_now

    def _targets(self, command: str, names: str, most: int) -> list[str]:
        """The comma-separated targets of a line, at most ``most`` (407
        for the rest)."""
        targets = [name for name in names.split(",") if name]
        if len(targets) > most:
            if command != "NOTICE":
                self._numeric("407", targets[most][:CHANNELLEN], "Too many targets")
            del targets[most:]
        return targets

    def irc_JOIN(self, params: list[str]) -> None:  # noqa: N802
        """``JOIN #a,#b``: enter each room; ``JOIN 0``: part them all."""
        if params[0] == "0":
            for here in list(self.channels.values()):
                self._part(here, "left all rooms")
            return
        for name in self._targets("JOIN", params[0], MAX_CHANNELS):
            room = self._channel_room(name)
            if room is None or room in self.channels:
                continue
            self._session("JOIN", name, {"CMD": "ENTER", "ROOM": room})

    def irc_PART(self, params: list[str]) -> None:  # noqa: N802
        """``PART #a,#b [reason]``: leave each room."""
        reason = params[1] if len(params) > 1 else "left the room"
        for name in self._targets("PART", params[0], MAX_CHANNELS):
            room = self._channel_room(name)
            if room is None:
                continue
            here = self.channels.get(room)
            if here is None:
                self._numeric("442", name, "You're not on that channel")
                continue
            self._part(here, reason)

    def _part(self, here: Channel, reason: str) -> None:
        if self._session("PART", here.name, {"CMD": "EXIT", "ROOM": here.room}):
            del self.channels[here.room]
            self._say("PART", here.name, reason, prefix=self._mask(self.uid or ""))

    def irc_PRIVMSG(self, params: list[str], command: str = "PRIVMSG") -> None:  # noqa: N802
        """To ``#room`` (a room broadcast) or to a nick (a private message)."""
        notice = command == "NOTICE"
        if not params or not params[0]:
            if not notice:
                self._numeric("411", f"No recipient given ({command})")
            return
        if len(params) < 2 or not params[1]:
            if not notice:
                self._numeric("412", "No text to send")
            return
        text = params[1]
        # MUCA clients read a /me (CTCP ACTION) as "* nick does".
        said = text
        if text.startswith(ACTION):
            said = f"* {self.nick} {text[len(ACTION) :].removesuffix(chr(1))}"
        uid = self.uid or ""
        for target in self._targets(command, params[0], MAX_TARGETS):
            self._notice = notice
            if target.startswith("#"):
                room = self._channel_room(target)
                if room is None:
                    continue
                request = {"CMD": "SEND", "MSG": said, "TO": [], "FROM": uid}
                request["ROOM"] = room
            else:
                to = self._uid_of(target)
                if to is None:
                    if not notice:
                        self._numeric("401", target[:NICKLEN], "No such nick/channel")
                    continue
                if to == uid:
                    self._privmsg(
                        self._mask(uid), self.nick or "*", text, None, command
                    )
                    continue
                request = {"CMD": "SEND", "MSG": said, "TO": [to], "FROM": uid}
                away = self._away_of(to)
                if away and not notice:
                    self._numeric("301", self._nick_of(to), away)
            echo = "echo-message" in self.caps
            if echo:
                # Echoed once accepted, with its id (see accepted).
                self._echoes.append((command, target, text, said))
            if not self._session(command, target, request) and echo:
                self._echoes.pop()

    def irc_NOTICE(self, params: list[str]) -> None:  # noqa: N802
        """As PRIVMSG, never answered by an error."""
        self.irc_PRIVMSG(params, "NOTICE")

    def _away_of(self, uid: str) -> str | None:
        member = self.factory.room.member(uid)
        connection = None if member is None else member.connection
        return getattr(connection, "away", None)

    def irc_TOPIC(self, params: list[str]) -> None:  # noqa: N802
        """Ask for a channel's topic, or set it (its owner: ``ROOMSET``)."""
        room = self._channel_room(params[0])
        if room is None:
            return
        here = self.channels.get(room)
        if here is None:
            self._numeric("442", params[0], "You're not on that channel")
            return
        if len(params) == 1:
            self._topic_reply(here)
            return
        request = {"CMD": "ROOMSET", "ROOM": room, "TOPIC": params[1][:MAX_TOPIC]}
        self._session("TOPIC", here.name, request)

    def irc_NAMES(self, params: list[str]) -> None:  # noqa: N802
        """The members of channels it is in."""
        if not params:
            self._numeric("366", "*", "End of /NAMES list.")
            return
        for name in self._targets("NAMES", params[0], MAX_CHANNELS):
            here = self.channels.get(name[1:].lower()) if name.startswith("#") else None
            if here is None:
                self._numeric("366", name[:CHANNELLEN], "End of /NAMES list.")
            else:
                self._names(here)

    def irc_WHO(self, params: list[str]) -> None:  # noqa: N802
        """352 for each member of a channel it is in, or for one nick."""
        mask = params[0] if params else "*"
        if mask.startswith("#"):
            here = self.channels.get(mask[1:].lower())
            if here is not None:
                owner = self._owner(here.room)
                for uid in here.members:
                    self._who_line(here.name, uid, "@" if uid == owner else "")
        else:
            uid = self._uid_of(mask)
            if uid is not None:
                self._who_line("*", uid, "")
        self._numeric("315", mask[:CHANNELLEN], "End of /WHO list.")

    def _who_line(self, where: str, uid: str, op: str) -> None:
        here = "G" if self._away_of(uid) else "H"
        self._numeric(
            "352",
            where,
            user_part(uid),
            USER_HOST,
            SERVER,
            self._nick_of(uid),
            here + op,
            f"0 {uid}",
        )

    def irc_WHOIS(self, params: list[str]) -> None:  # noqa: N802
        """Who a nick is: its user id, its channels, away or not."""
        nick = params[-1].split(",")[0]
        uid = self._uid_of(nick)
        if uid is None:
            self._numeric("401", nick[:NICKLEN], "No such nick/channel")
            self._numeric("318", nick[:NICKLEN], "End of /WHOIS list.")
            return
        shown = self._nick_of(uid)
        self._numeric("311", shown, user_part(uid), USER_HOST, "*", uid)
        shared = [here.name for here in self.channels.values() if uid in here.members]
        if shared:
            self._numeric("319", shown, " ".join(shared))
        self._numeric("312", shown, SERVER, "MUCA chat server")
        away = self._away_of(uid)
        if away:
            self._numeric("301", shown, away)
        self._numeric("318", shown, "End of /WHOIS list.")

    def irc_LIST(self, params: list[str]) -> None:  # noqa: N802
        """The rooms it may see (as ``ROOMS`` last showed them)."""
        self._numeric("321", "Channel", "Users  Name")
        for room, entry in self.listing.items():
            self._numeric(
                "322", channel(room), str(entry.get("COUNT", 0)), entry.get("TOPIC", "")
            )
        self._numeric("323", "End of /LIST")

    def irc_MODE(self, params: list[str]) -> None:  # noqa: N802
        """Mode queries (324, 221, an empty ban list); user mode ``i``."""
        target = params[0]
        changes = params[1] if len(params) > 1 else ""
        if target.startswith("#"):
            room = target[1:].lower()
            if room not in self.listing and room not in self.channels:
                self._numeric("403", target[:CHANNELLEN], "No such channel")
            elif not changes:
                found = self.factory.room.rooms.get(room)
                private = found is not None and found.private
                self._numeric("324", channel(room), "+nt" + ("i" if private else ""))
            elif changes.lstrip("+") == "b":
                self._numeric("368", channel(room), "End of channel ban list")
            elif changes in ("+i", "-i") and room in self.channels:
                # Invite-only is a private room (ROOMSET, its owner's).
                request = {"CMD": "ROOMSET", "ROOM": room, "PRIVATE": changes == "+i"}
                if self._session("MODE", channel(room), request):
                    self._say(
                        "MODE",
                        channel(room),
                        changes,
                        prefix=self._mask(self.uid or ""),
                    )
            else:
                self._numeric(
                    "482", channel(room), "Channel modes cannot be changed over IRC yet"
                )
            return
        if irc_lower(target) != irc_lower(self.nick or ""):
            self._numeric("502", "Cannot change mode for other users")
            return
        if not changes:
            self._numeric("221", "+" + self.modes)
            return
        adding = True
        for letter in changes:
            if letter in "+-":
                adding = letter == "+"
            elif letter == "i":
                self.modes = "i" if adding else ""
            else:
                self._numeric("501", "Unknown MODE flag")
                return
        self._say("MODE", self.nick or "*", changes, prefix=self._mask(self.uid or ""))

    def irc_INVITE(self, params: list[str]) -> None:  # noqa: N802
        """``INVITE nick #room``: that user may enter the (private) room."""
        nick, name = params[0], params[1]
        uid = self._uid_of(nick)
        if uid is None:
            self._numeric("401", nick[:NICKLEN], "No such nick/channel")
            return
        room = self._channel_room(name)
        if room is None:
            return
        if room not in self.channels:
            self._numeric("442", name, "You're not on that channel")
            return
        request = {"CMD": "INVITE", "ROOM": room, "UID": uid}
        if self._session("INVITE", channel(room), request):
            self._numeric("341", self._nick_of(uid), channel(room))

    def irc_AWAY(self, params: list[str]) -> None:  # noqa: N802
        """``AWAY :message`` (306), ``AWAY`` (305)."""
        if params and params[0]:
            self.away = params[0]
            self._numeric("306", "You have been marked as being away")
        else:
            self.away = None
            self._numeric("305", "You are no longer marked as being away")

    def irc_CHATHISTORY(self, params: list[str]) -> None:  # noqa: N802
        """IRCv3 ``draft/chathistory`` of a channel: the messages asked for
        in a ``chathistory`` batch, read in turn (see muca.irc.history)."""
        try:
            query = parse_query(params)
        except BadQuery as bad:
            self._fail(bad.code, params[0][:32], bad.reason)
            return
        if not query.target.startswith("#"):
            self._fail(
                "INVALID_TARGET",
                query.subcommand,
                query.target[:NICKLEN],
                "Only channels' history can be read here",
            )
            return
        if len(self._queries) >= MAX_HISTORY_QUERIES:
            self._fail(
                "MESSAGE_ERROR",
                query.subcommand,
                query.target[:CHANNELLEN],
                "Too many CHATHISTORY requests at once: wait for the answers",
            )
            return
        self._queries.append(query)
        if len(self._queries) == 1:
            self._next_query()

    def _fail(self, code: str, *params: str) -> None:
        self._say("FAIL", "CHATHISTORY", code, *params)

    def _next_query(self) -> None:
        """Read the first request waiting; answer it, then the next one."""
        query = self._queries[0]
        member = None if self.user is None else self.user.member
        reading: Deferred[list[ChatMessage]]
        try:
            if member is None:
                raise ProtocolError(messages.NOT_JOINED, "not joined", "CHATHISTORY")
            room = room_name(query.target, "CHATHISTORY")
            before, top = self.factory.replays.room_reader(member, room, "CHATHISTORY")
            reading = Deferred.fromCoroutine(RoomHistory(before, top).answer(query))
        except ProtocolError as error:
            reading = fail(error)
        reading.addCallbacks(self._answer, self._unanswered, (query,), None, (query,))
        reading.addErrback(
            lambda failure: log.failure("answering CHATHISTORY", failure)
        )
        reading.addBoth(self._query_done)

    def _answer(self, found: list[ChatMessage], query: Query) -> None:
        if self._closing:
            return
        outbox = self.factory.outbox
        if outbox:
            outbox.flush_one(self)
        name = channel(room_name(query.target, "CHATHISTORY"))
        batched = "batch" in self.caps
        if batched:
            self._batches += 1
            ident = f"h{self._batches}"
            # Written as is: no trailing parameter (":-h1") to confuse clients.
            self.sendCommand("BATCH", [f"+{ident}", "chathistory", name], SERVER)
            self._batch = ident
        try:
            for message in found:
                obj = message.history_payload()
                obj["ROOM"] = room_name(query.target, "CHATHISTORY")
                self._on_msg(obj)
        finally:
            self._batch = None
        if batched:
            self.sendCommand("BATCH", [f"-{ident}"], SERVER)
        self.charge_answer(sum(len(line) for line in self._out))
        self._flush_out()

    def _unanswered(self, failure: Failure, query: Query) -> None:
        if self._closing:
            return
        target = query.target[:CHANNELLEN]
        if failure.check(ProtocolError):
            error = failure.value
            code = (
                "INVALID_TARGET"
                if error.code
                in (messages.NO_SUCH_ROOM, messages.NOT_IN_ROOM, messages.BAD_ROOM)
                else "MESSAGE_ERROR"
            )
            self._fail(code, query.subcommand, target, error.reason)
        else:
            log.failure("cannot read the history for CHATHISTORY", failure)
            self._fail(
                "MESSAGE_ERROR",
                query.subcommand,
                target,
                "The history cannot be read now",
            )
        self._flush_out()

    def _query_done(self, _: object) -> None:
        self._queries.popleft()
        if self._queries and not self._closing:
            self._next_query()

    # The connection's life

    def timeoutConnection(self) -> None:  # noqa: N802
        """Registration not done in time, or a registered client silent:
        pinged first, then disconnected."""
        if self.phase is Phase.JOINED:
            if not self._pinged:
                self._pinged = True
                self._say("PING", SERVER, prefix="")
                self._flush_out()
                self.setTimeout(PING_WAIT)
            else:
                self._closing_link("Ping timeout")
            return
        if self.phase is Phase.CONNECTED:
            log.info("closing {peer}: not registered in time", peer=self.peer)
            self._closing_link("Registration timed out")
            return
        super().timeoutConnection()
        self._flush_out()

    def shutdown(self, grace: float) -> None:
        """The server stops: say so, then close."""
        if not self._close_started:
            self._say(
                "ERROR",
                f"Closing Link: {self.peer} (the server is shutting down)",
                prefix="",
            )
            self._flush_out()
        super().shutdown(grace)

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802
        """Gone: out of the rooms."""
        self._out.clear()
        self._buffer.clear()
        super().connectionLost(reason)


#: What each MUCA payload becomes.
_PAYLOADS: dict[str, Callable[[IrcPeer, dict[str, Any]], None]] = {
    "ACK": IrcPeer._on_ack,
    "ROOMS": IrcPeer._on_rooms,
    "ENTERED": IrcPeer._on_entered,
    "LIST": IrcPeer._on_list,
    "PRESENCE": IrcPeer._on_presence,
    "TOPIC": IrcPeer._on_topic,
    "MSG": IrcPeer._on_msg,
    "ERROR": IrcPeer._on_error,
}

#: Each command: the parameters it needs, and its handler.
_COMMANDS: dict[str, tuple[int, Callable[[IrcPeer, list[str]], None]]] = {
    "CAP": (1, IrcPeer.irc_CAP),
    "NICK": (0, IrcPeer.irc_NICK),
    "USER": (4, IrcPeer.irc_USER),
    "PASS": (1, IrcPeer.irc_PASS),
    "AUTHENTICATE": (1, IrcPeer.irc_AUTHENTICATE),
    "PING": (0, IrcPeer.irc_PING),
    "PONG": (0, IrcPeer.irc_PONG),
    "QUIT": (0, IrcPeer.irc_QUIT),
    "JOIN": (1, IrcPeer.irc_JOIN),
    "PART": (1, IrcPeer.irc_PART),
    "PRIVMSG": (0, IrcPeer.irc_PRIVMSG),
    "NOTICE": (0, IrcPeer.irc_NOTICE),
    "TOPIC": (1, IrcPeer.irc_TOPIC),
    "NAMES": (0, IrcPeer.irc_NAMES),
    "WHO": (0, IrcPeer.irc_WHO),
    "WHOIS": (1, IrcPeer.irc_WHOIS),
    "LIST": (0, IrcPeer.irc_LIST),
    "MODE": (1, IrcPeer.irc_MODE),
    "AWAY": (0, IrcPeer.irc_AWAY),
    "INVITE": (2, IrcPeer.irc_INVITE),
    "CHATHISTORY": (1, IrcPeer.irc_CHATHISTORY),
}

#: MUCA error codes as numerics, by the IRC command they answer ("" any).
_ERROR_NUMERICS: dict[tuple[str, str], str] = {
    ("JOIN", messages.NO_SUCH_ROOM): "403",
    ("JOIN", messages.INVITE_ONLY): "473",
    ("JOIN", messages.BANNED): "474",
    ("JOIN", messages.BAD_ROOM): "479",
    ("PART", messages.NOT_IN_ROOM): "442",
    ("TOPIC", messages.NOT_ALLOWED): "482",
    ("TOPIC", messages.NO_SUCH_ROOM): "403",
    ("MODE", messages.NOT_ALLOWED): "482",
    ("INVITE", messages.NOT_IN_ROOM): "442",
    ("", messages.NO_SUCH_ROOM): "403",
    ("", messages.NOT_IN_ROOM): "404",
    ("", messages.BANNED): "404",
    ("", messages.UNKNOWN_RECIPIENT): "401",
}
