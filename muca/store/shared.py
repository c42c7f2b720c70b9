"""What every SQL backend does the same way, written once: the store's
operations over two hooks that say how a backend runs work on its database
thread (in a write transaction, or as a read)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from muca.store import accounts, retention, sql
from muca.store.base import (
    DEFAULT_ROOMS,
    ChatMessage,
    KnownUser,
    Page,
    Sanction,
    StoredRoom,
    StoreError,
)
from muca.store.search import Query

T = TypeVar("T")

log = Logger()


#: Appends waiting for a transaction: each one's messages and Deferred.
Appends = list[tuple[list[ChatMessage], Deferred[None]]]


class SQLStoreOperations:
    """The ``MessageStore`` operations of a backend with ``dialect``,
    ``_last_id``, ``_write`` and ``_query``."""

    dialect: sql.Dialect
    _last_id: int

    def __init__(self) -> None:
        # Appends not yet in a transaction; whether one is being written.
        self._appends: Appends = []
        self._appending = False
        # The highest id handed to append: the next must be above it.
        self._last_appended = 0
        # The known users as the open read them (see known_at_open).
        self._known_at_open: list[KnownUser] = []
        # The rooms and each account's rooms as the open read them.
        self._rooms_at_open: list[StoredRoom] = []
        self._account_rooms_at_open: dict[str, list[str]] = {}
        # The moderators, bans and mutes as the open read them.
        self._moderators_at_open: dict[str, set[str]] = {}
        self._sanctions_at_open: list[Sanction] = []

    def _write(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``work(cursor, *args)`` in one committed transaction."""
        raise NotImplementedError

    def _query(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``work(cursor, *args)`` as a read."""
        raise NotImplementedError

    def last_id(self) -> int:
        """The highest id ever stored (0 if none); valid after ``open``."""
        return self._last_id

    def unavailable(self) -> str | None:
        """Why appends are refused now, or None: never known ahead here."""
        return None

    def known_at_open(self) -> list[KnownUser]:
        """The known users when the store was opened, the least recently
        seen first (read by the open: a server knows them before it serves)."""
        return self._known_at_open

    def rooms_at_open(self) -> list[StoredRoom]:
        """The rooms kept when the store was opened, the oldest first, with
        their settings and invitations (read by the open, as the known
        users are)."""
        return self._rooms_at_open

    def account_rooms_at_open(self) -> dict[str, list[str]]:
        """Each account's rooms when the store was opened, by user id."""
        return self._account_rooms_at_open

    def _read_at_open(self, cursor: Any) -> None:
        """What the open reads besides the schema, on the database thread:
        the known users, the rooms, the accounts' rooms."""
        self._known_at_open = sql.known_users(cursor)
        self._rooms_at_open = sql.read_rooms(cursor, self.dialect)
        self._account_rooms_at_open = sql.read_account_rooms(cursor)
        self._moderators_at_open = sql.read_moderators(cursor)
        self._sanctions_at_open = sql.read_sanctions(cursor, self.dialect)

    def moderators_at_open(self) -> dict[str, set[str]]:
        """Each room's moderators when the store was opened."""
        return self._moderators_at_open

    def sanctions_at_open(self) -> list[Sanction]:
        """The bans and mutes kept when the store was opened."""
        return self._sanctions_at_open

    def append(self, messages: Sequence[ChatMessage]) -> Deferred[None]:
        """Store ``messages``; fires after the commit (see ``MessageStore``)."""
        messages = list(messages)
        try:
            sql.check_batch(messages, max(self._last_id, self._last_appended))
        except StoreError:
            return fail()
        if not messages:
            return succeed(None)
        newest = self._last_appended = messages[-1].id
        d = self._append_in_order(messages)

        def stored(_: object) -> None:
            self._last_id = max(self._last_id, newest)

        d.addCallback(stored)
        return d

    def _append_in_order(self, messages: list[ChatMessage]) -> Deferred[None]:
        """Queue an append: one transaction at a time, with all the appends
        queued while the one before was written."""
        d: Deferred[None] = Deferred()
        self._appends.append((messages, d))
        if not self._appending:
            self._write_appends()
        return d

    def _write_appends(self) -> None:
        appends, self._appends = self._appends, []
        self._appending = bool(appends)
        if appends:
            messages = [m for batch, _ in appends for m in batch]
            self._write(sql.insert, self.dialect, messages).addBoth(
                self._appends_written, appends
            )

    def _appends_written(self, outcome: object, appends: Appends) -> None:
        # The next transaction is on its way before these fire.
        self._write_appends()
        self._fire(appends, outcome)

    @staticmethod
    def _fire(appends: Appends, outcome: object) -> None:
        """Fire the Deferreds of appends written together: all with the
        failure, or all with None."""
        for _, d in appends:
            if isinstance(outcome, Failure):
                d.errback(outcome)
            else:
                d.callback(None)

    def latest(
        self,
        reader: str | None,
        private: bool,
        limit: int,
        rooms: Sequence[str] = DEFAULT_ROOMS,
    ) -> Deferred[Page]:
        """The newest ``limit`` messages ``reader`` may see, oldest first."""
        return self._page(reader, private, 0, sql.NO_UPPER_BOUND, limit, rooms)

    def since(
        self,
        reader: str | None,
        private: bool,
        after_id: int,
        limit: int = 1000,
        rooms: Sequence[str] = DEFAULT_ROOMS,
    ) -> Deferred[Page]:
        """Visible messages with an id above ``after_id``: the newest ``limit``."""
        return self._page(reader, private, after_id, sql.NO_UPPER_BOUND, limit, rooms)

    def before(
        self,
        reader: str | None,
        private: bool,
        before_id: int,
        limit: int,
        rooms: Sequence[str] = DEFAULT_ROOMS,
    ) -> Deferred[Page]:
        """The newest ``limit`` visible messages with an id below ``before_id``."""
        return self._page(reader, private, 0, before_id, limit, rooms)

    def _page(
        self,
        reader: str | None,
        private: bool,
        lower: int,
        upper: int,
        limit: int,
        rooms: Sequence[str],
    ) -> Deferred[Page]:
        return self._query(
            sql.read_page,
            self.dialect,
            reader,
            private,
            lower,
            upper,
            limit,
            tuple(rooms),
        )

    def search(
        self,
        reader: str | None,
        private: bool,
        query: Query,
        rooms: Sequence[str] = DEFAULT_ROOMS,
        sender: str | None = None,
        before: int = sql.NO_UPPER_BOUND,
        limit: int = 20,
    ) -> Deferred[Page]:
        """The newest ``limit`` messages matching ``query`` that ``reader``
        may read (see ``MessageStore.search``), oldest first."""
        return self._query(
            sql.search,
            self.dialect,
            query,
            reader,
            private,
            tuple(rooms),
            sender,
            before,
            limit,
        )

    def remember_user(self, uid: str, nickname: str, seen_ms: int) -> Deferred[None]:
        """Record that ``uid`` was seen at ``seen_ms`` as ``nickname``."""
        return self._write(sql.remember_user, self.dialect, uid, nickname, seen_ms)

    def save_room(self, room: StoredRoom) -> Deferred[None]:
        """Keep a room made, or its new settings."""
        return self._write(sql.save_room, self.dialect, room)

    def save_invite(self, room: str, uid: str) -> Deferred[None]:
        """Keep that ``uid`` was invited to ``room``."""
        return self._write(sql.save_invite, self.dialect, room, uid)

    def save_account_room(
        self, uid: str, room: str, member: bool, seen_ms: int
    ) -> Deferred[None]:
        """Keep that account ``uid`` is (or no longer is) in ``room``."""
        return self._write(
            sql.save_account_room, self.dialect, uid, room, member, seen_ms
        )

    # Moderation

    def message(self, message_id: int) -> Deferred[ChatMessage | None]:
        """The message kept under ``message_id``, if any."""
        return self._query(sql.read_message, self.dialect, message_id)

    def delete_text(self, message_id: int) -> Deferred[None]:
        """Empty a message's text, in history and search."""
        return self._write(sql.delete_text, self.dialect, message_id)

    def admins(self) -> Deferred[list[str]]:
        """The enabled admin accounts' user ids."""
        return self._query(sql.admins)

    def save_reports(self, uids: Sequence[str], report: str) -> Deferred[None]:
        """Keep a report (JSON) for these moderators until their next JOIN."""
        return self._write(sql.save_reports, self.dialect, tuple(uids), report)

    def take_reports(self, uid: str) -> Deferred[list[str]]:
        """The reports waiting for ``uid`` (JSON), forgotten as read."""
        return self._write(sql.take_reports, self.dialect, uid)

    def moderators(self) -> Deferred[dict[str, set[str]]]:
        """Each room's moderators now (``muca-admin`` may have named some)."""
        return self._query(sql.read_moderators)

    def save_moderator(self, room: str, uid: str, named: bool) -> Deferred[None]:
        """Keep that ``uid`` is (or no longer is) a moderator of ``room``."""
        return self._write(sql.save_moderator, self.dialect, room, uid, named)

    def save_sanction(self, sanction: Sanction) -> Deferred[None]:
        """Keep a ban or mute."""
        return self._write(sql.save_sanction, self.dialect, sanction)

    def drop_sanction(self, kind: str, room: str, uid: str) -> Deferred[None]:
        """Forget a ban or mute."""
        return self._write(sql.drop_sanction, self.dialect, kind, room, uid)

    def audit(
        self, ts: int, actor: str, action: str, target: str | None, detail: str | None
    ) -> Deferred[None]:
        """Add a line to the audit log."""
        return self._write(
            accounts.audit, self.dialect, ts, actor, action, target, detail
        )

    # Accounts (--auth db)

    def account(self, uid: str) -> Deferred[accounts.Account | None]:
        """The account ``uid`` (its encoded password hash included), or None."""
        return self._query(accounts.get_account, self.dialect, uid)

    def register(
        self, account: accounts.Account, invitation: str | None, now_ms: int
    ) -> Deferred[None]:
        """Make ``account``, using ``invitation`` once (None: none needed);
        fails with ``AccountRefused`` (``UID_TAKEN``, ``BAD_INVITE``)."""
        return self._write(accounts.register, self.dialect, account, invitation, now_ms)

    def set_password(
        self, uid: str, password_hash: str, now_ms: int, action: str = "password"
    ) -> Deferred[bool]:
        """Keep the account's new password hash, audited as ``action`` by
        the account itself (``password``: it changed its password;
        ``rehash``: hashed again with today's parameters); False when there
        is no such account."""
        return self._write(self._set_password, uid, password_hash, now_ms, action)

    def _set_password(
        self, cursor: Any, uid: str, password_hash: str, now_ms: int, action: str
    ) -> bool:
        changed = accounts.update_account(
            cursor, self.dialect, uid, password_hash=password_hash
        )
        if changed:
            accounts.audit(cursor, self.dialect, now_ms, uid, action, uid)
        return changed

    def account_states(
        self, uids: Sequence[str]
    ) -> Deferred[dict[str, tuple[str, bool]]]:
        """The role and disabled flag of each of ``uids`` with an account."""
        return self._query(accounts.account_states, self.dialect, list(uids))

    def prune(
        self,
        max_age_days: float | None,
        max_count: int | None,
        now_ms: int,
        max_bytes: int | None = None,
    ) -> Deferred[int]:
        """Delete messages older than the age, beyond the newest count, or
        the oldest past ``max_bytes``."""
        return self._write(self._prune, max_age_days, max_count, now_ms, max_bytes)

    def _prune(self, cursor: Any, *limits: Any) -> int:
        """The pruning's transaction, on the database thread (a backend may
        take a lock first)."""
        return retention.prune(cursor, self.dialect, *limits)
