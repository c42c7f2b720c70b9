"""The message store's values and interface, shared by every backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from twisted.internet.defer import Deferred

# One message type for the wire, the bus and the store (re-exported here).
from muca.protocol.messages import ALL, ChatMessage

if TYPE_CHECKING:
    from muca.store.search import Query

#: The schema version this release writes; a database with a newer one is
#: refused rather than misread, one with an older one is migrated at open.
#: 2: the readers index (muca_readers) instead of per-user indexes.
#: 3: each message's sender nickname; known users' last nickname and time.
#: 4: each message's room ('' the default room); the rooms, their
#: invitations and each account's rooms.
#: 5: accounts (--auth db), invitations to register, the audit log.
#: 6: the search index (see ``muca.store.search_index``).
#: 7: moderation: the rooms' moderators, bans and mutes.
SCHEMA_VERSION = 7

#: The room of a message in the default room (and of every private or group
#: message): whatever room the server names its default (``--default-room``).
DEFAULT_ROOM_KEY = ""

#: The rooms whose broadcasts a reader sees when a caller names none: the
#: default room's.
DEFAULT_ROOMS: tuple[str, ...] = (DEFAULT_ROOM_KEY,)


class StoreError(Exception):
    """The store cannot do what was asked; ``str()`` is one readable line."""

    def __init__(self, message: str) -> None:
        # Driver messages may span lines (libpq adds hints); the server logs
        # and prints this, so it is folded into one line here.
        super().__init__(one_line(message))


def one_line(text: str) -> str:
    """Fold ``text`` into one line of single-spaced words."""
    return " ".join(text.split())


@dataclass(slots=True)
class Page:
    """Messages a reader may see, oldest first; ``more``: older ones exist."""

    messages: list[ChatMessage] = field(default_factory=list)
    more: bool = False


@dataclass(frozen=True, slots=True)
class KnownUser:
    """A user id that has joined: the nickname it last had, and when it was
    last seen (joined or left; ms since the epoch, 0 if never recorded)."""

    uid: str
    nickname: str | None
    seen: int


@dataclass(frozen=True, slots=True)
class StoredRoom:
    """A room as the store keeps it: its name, owner (None: the server's),
    settings, when it was made (ms since the epoch) and the user ids
    invited to it (in the order they were)."""

    name: str
    owner: str | None
    topic: str = ""
    private: bool = False
    slow: int = 0
    created: int = 0
    invited: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Sanction:
    """A ban or a mute (``kind``) of ``uid`` in ``room`` (``""``: the whole
    server) until ``until`` (ms since the epoch; None: for ever), by whom
    and why."""

    kind: str
    room: str
    uid: str
    until: int | None
    by: str
    reason: str = ""


#: The kinds of a :class:`Sanction`.
BAN = "ban"
MUTE = "mute"


#: The server roles an account may have (``--auth db``).
ADMIN = "admin"
MEMBER = "member"
ROLES = (ADMIN, MEMBER)


class AccountRefused(Exception):
    """A registration the database refuses: ``code`` is the protocol's
    (``UID_TAKEN``, ``BAD_INVITE``); the transaction is rolled back."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Account:
    """One account as kept: ``password_hash`` is the encoded Argon2id hash;
    ``created``: ms since the epoch."""

    uid: str
    password_hash: str
    role: str = MEMBER
    disabled: bool = False
    created: int = 0


@dataclass(frozen=True, slots=True)
class Invitation:
    """An invitation code: uses left, expiry (ms since the epoch, None:
    never), revoked, who made it and when."""

    code: str
    uses_left: int
    expires: int | None
    revoked: bool
    created_by: str | None
    created: int

    def usable(self, now_ms: int) -> bool:
        """Whether a registration may use it at ``now_ms``."""
        return (
            not self.revoked
            and self.uses_left > 0
            and (self.expires is None or self.expires > now_ms)
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log: when (ms since the epoch), who, what, to
    whom, and details (never a password)."""

    ts: int
    actor: str
    action: str
    target: str | None
    detail: str | None


def may_read(
    message: ChatMessage,
    reader: str | None,
    private: bool,
    rooms: Sequence[str] = DEFAULT_ROOMS,
) -> bool:
    """The visibility rule, in Python: the SQL of every backend must agree.

    The broadcasts of ``rooms`` (room keys: ``""`` the default room); and,
    only when ``private`` (servers with --auth), the group and private
    messages that ``reader`` sent or received.
    """
    if message.kind == ALL:
        return message.room in rooms
    if not private or reader is None:
        return False
    return message.sender == reader or reader in message.recipients


class MessageStore(Protocol):
    """Where accepted messages are kept, and read back per reader.

    Every method but ``last_id`` returns a Deferred that fires on the reactor
    thread; failures are ``StoreError``.  The caller gives strictly
    increasing ids; it may append again before an append has fired.
    """

    def open(self) -> Deferred[None]:
        """Create the schema, or check an existing one (refusing foreign data)."""
        ...

    def open_blocking(self) -> None:
        """``open`` on the calling thread, for a server's start; raises
        ``StoreError``."""
        ...

    def last_id(self) -> int:
        """The highest id ever stored (0 if none); valid after ``open``."""
        ...

    def unavailable(self) -> str | None:
        """Why appends are refused now (the disk stalls, the file is gone),
        or None; ``/healthz`` says it."""
        ...

    def known_at_open(self) -> list[KnownUser]:
        """Every user remembered when ``open`` read them, the least recently
        seen first; valid after ``open``."""
        ...

    def rooms_at_open(self) -> list[StoredRoom]:
        """Every room kept when ``open`` read them, with its settings and
        invitations, the oldest first; valid after ``open``."""
        ...

    def account_rooms_at_open(self) -> dict[str, list[str]]:
        """Each account's rooms (``--auth``) when ``open`` read them, by
        user id, in the order it entered them; valid after ``open``."""
        ...

    def save_room(self, room: StoredRoom) -> Deferred[None]:
        """Keep a room made, or its new settings (not its invitations:
        ``save_invite``)."""
        ...

    def save_invite(self, room: str, uid: str) -> Deferred[None]:
        """Keep that ``uid`` was invited to ``room``."""
        ...

    def save_account_room(
        self, uid: str, room: str, member: bool, seen_ms: int
    ) -> Deferred[None]:
        """Keep that the account ``uid`` is (``member``) or is no longer a
        member of ``room``; ``seen_ms``: when it entered."""
        ...

    def moderators_at_open(self) -> dict[str, set[str]]:
        """Each room's moderators when ``open`` read them, by room name."""
        ...

    def sanctions_at_open(self) -> list[Sanction]:
        """The bans and mutes kept when ``open`` read them (expired ones
        too: the caller ends those)."""
        ...

    def message(self, message_id: int) -> Deferred[ChatMessage | None]:
        """The message kept under ``message_id``, if any (one appended
        already included)."""
        ...

    def delete_text(self, message_id: int) -> Deferred[None]:
        """Empty a message's text (its id stays), in history and search."""
        ...

    def admins(self) -> Deferred[list[str]]:
        """The enabled admin accounts' user ids."""
        ...

    def save_reports(self, uids: Sequence[str], report: str) -> Deferred[None]:
        """Keep a report (its JSON) for these moderators until their next
        ``JOIN`` (at most ``sql.MAX_PENDING_REPORTS`` each)."""
        ...

    def take_reports(self, uid: str) -> Deferred[list[str]]:
        """The reports waiting for ``uid``, oldest first, forgotten as read."""
        ...

    def moderators(self) -> Deferred[dict[str, set[str]]]:
        """Each room's moderators now, read off the reactor thread."""
        ...

    def save_moderator(self, room: str, uid: str, named: bool) -> Deferred[None]:
        """Keep that ``uid`` is (``named``) or no longer is a moderator of
        ``room``."""
        ...

    def save_sanction(self, sanction: Sanction) -> Deferred[None]:
        """Keep a ban or mute (replacing one of the same kind, room, uid)."""
        ...

    def drop_sanction(self, kind: str, room: str, uid: str) -> Deferred[None]:
        """Forget a ban or mute (lifted, or over)."""
        ...

    def audit(
        self, ts: int, actor: str, action: str, target: str | None, detail: str | None
    ) -> Deferred[None]:
        """Add a line to the audit log."""
        ...

    def append(self, messages: Sequence[ChatMessage]) -> Deferred[None]:
        """Store ``messages``; fires once they are durable.

        Appends are written in call order and fire in call order; those made
        while one is being written go together in the next transaction
        (group commit), and fail together when it does.  (One exception: the
        appends that wait behind a write the disk does not finish are
        refused before it fires; see ``muca.store.spool_thread``.)
        """
        ...

    def latest(
        self,
        reader: str | None,
        private: bool,
        limit: int,
        rooms: Sequence[str] = DEFAULT_ROOMS,
    ) -> Deferred[Page]:
        """The newest ``limit`` messages ``reader`` may see: the broadcasts
        of ``rooms`` (room keys), and its own private and group messages
        when ``private`` (see ``may_read``)."""
        ...

    def since(
        self,
        reader: str | None,
        private: bool,
        after_id: int,
        limit: int = 1000,
        rooms: Sequence[str] = DEFAULT_ROOMS,
    ) -> Deferred[Page]:
        """Visible messages with an id above ``after_id``: the newest ``limit``."""
        ...

    def before(
        self,
        reader: str | None,
        private: bool,
        before_id: int,
        limit: int,
        rooms: Sequence[str] = DEFAULT_ROOMS,
    ) -> Deferred[Page]:
        """The newest ``limit`` visible messages with an id below ``before_id``."""
        ...

    def search(
        self,
        reader: str | None,
        private: bool,
        query: Query,
        rooms: Sequence[str] = DEFAULT_ROOMS,
        sender: str | None = None,
        before: int = 2**63 - 1,
        limit: int = 20,
    ) -> Deferred[Page]:
        """The newest ``limit`` messages matching ``query`` (parsed by
        ``muca.store.search.parse``) that ``reader`` may see as in a page
        (the broadcasts of ``rooms``, its own private and group messages
        when ``private``), sent by ``sender`` when given, with an id below
        ``before``; oldest first, ``more`` when older matches exist. Every
        message appended before the call is searched."""
        ...

    def remember_user(self, uid: str, nickname: str, seen_ms: int) -> Deferred[None]:
        """Record that ``uid`` was seen (joined or left) at ``seen_ms`` as
        ``nickname`` (it becomes known for offline delivery)."""
        ...

    def account(self, uid: str) -> Deferred[Account | None]:
        """The account ``uid`` (``--auth db``), or None."""
        ...

    def register(
        self, account: Account, invitation: str | None, now_ms: int
    ) -> Deferred[None]:
        """Make ``account`` with one use of ``invitation`` (None: none
        needed); fails with ``muca.store.accounts.AccountRefused``."""
        ...

    def set_password(
        self, uid: str, password_hash: str, now_ms: int, action: str = "password"
    ) -> Deferred[bool]:
        """Keep an account's new password hash (audited as ``action``);
        False: no such account."""
        ...

    def account_states(
        self, uids: Sequence[str]
    ) -> Deferred[dict[str, tuple[str, bool]]]:
        """The role and disabled flag of each of ``uids`` with an account."""
        ...

    def prune(
        self,
        max_age_days: float | None,
        max_count: int | None,
        now_ms: int,
        max_bytes: int | None = None,
    ) -> Deferred[int]:
        """Delete messages older than the age, beyond the newest count, or
        the oldest while the database takes more than ``max_bytes``."""
        ...

    def close_blocking(self) -> None:
        """``close`` on the calling thread, when the reactor will not run."""
        ...

    def close(self) -> Deferred[None]:
        """Release the database; the store cannot be used afterwards."""
        ...
