"""The accounts' SQL (schema version 5): accounts, invitations to register
and the audit log, shared by SQLite and PostgreSQL.

Every function takes a DB-API cursor and runs on a database thread (the
server's store thread, or ``muca-admin``'s own connection) inside the
caller's transaction. Passwords never come here: only their encoded
Argon2id hashes (``muca.accounts.passwords``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from muca.protocol.messages import BAD_INVITE, UID_TAKEN
from muca.store.base import (
    ADMIN,
    MEMBER,
    ROLES,
    Account,
    AccountRefused,
    AuditEntry,
    Invitation,
)
from muca.store.sql import Dialect

__all__ = [
    "ADMIN",
    "MEMBER",
    "ROLES",
    "Account",
    "AccountRefused",
    "AuditEntry",
    "Invitation",
]

#: User ids asked about in one statement at most (see ``account_states``).
STATES_PER_QUERY = 500


def _account(row: Any) -> Account:
    uid, password_hash, role, disabled, created = row
    return Account(uid, password_hash, role, bool(disabled), int(created))


def get_account(cursor: Any, dialect: Dialect, uid: str) -> Account | None:
    """The account ``uid``, or None."""
    cursor.execute(
        dialect.sql(
            "SELECT uid, password_hash, role, disabled, created"
            " FROM muca_accounts WHERE uid = ?"
        ),
        (uid,),
    )
    rows = cursor.fetchall()
    return _account(rows[0]) if rows else None


def list_accounts(cursor: Any) -> list[Account]:
    """Every account, by user id."""
    cursor.execute(
        "SELECT uid, password_hash, role, disabled, created"
        " FROM muca_accounts ORDER BY uid"
    )
    return [_account(row) for row in cursor.fetchall()]


def add_account(cursor: Any, dialect: Dialect, account: Account) -> bool:
    """Insert ``account``; False (and nothing written) when its user id has
    one already."""
    cursor.execute(
        dialect.sql(
            "INSERT INTO muca_accounts (uid, password_hash, role, disabled, created)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (uid) DO NOTHING"
        ),
        (
            account.uid,
            account.password_hash,
            account.role,
            int(account.disabled),
            account.created,
        ),
    )
    return cursor.rowcount == 1


def update_account(
    cursor: Any,
    dialect: Dialect,
    uid: str,
    *,
    password_hash: str | None = None,
    role: str | None = None,
    disabled: bool | None = None,
) -> bool:
    """Change what is given of the account ``uid``; False when there is none."""
    changes: list[tuple[str, Any]] = []
    if password_hash is not None:
        changes.append(("password_hash", password_hash))
    if role is not None:
        changes.append(("role", role))
    if disabled is not None:
        changes.append(("disabled", int(disabled)))
    if not changes:
        return get_account(cursor, dialect, uid) is not None
    assignments = ", ".join(f"{column} = ?" for column, _ in changes)
    cursor.execute(
        dialect.sql(f"UPDATE muca_accounts SET {assignments} WHERE uid = ?"),
        (*(value for _, value in changes), uid),
    )
    return cursor.rowcount == 1


def account_states(
    cursor: Any, dialect: Dialect, uids: Iterable[str]
) -> dict[str, tuple[str, bool]]:
    """The role and disabled flag of each of ``uids`` that has an account."""
    wanted = sorted(set(uids))
    states: dict[str, tuple[str, bool]] = {}
    for start in range(0, len(wanted), STATES_PER_QUERY):
        chunk = wanted[start : start + STATES_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        cursor.execute(
            dialect.sql(
                f"SELECT uid, role, disabled FROM muca_accounts WHERE uid IN ({marks})"
            ),
            chunk,
        )
        for uid, role, disabled in cursor.fetchall():
            states[uid] = (role, bool(disabled))
    return states


def register(
    cursor: Any,
    dialect: Dialect,
    account: Account,
    invitation: str | None,
    now_ms: int,
) -> None:
    """A registration in one transaction: one use of ``invitation`` (None:
    none needed), then the account; raises :class:`AccountRefused` (the
    caller's transaction rolls back, the use included) when the code is
    unknown, used up, expired or revoked, or the user id is taken. The
    invitation is checked first: without a good code nobody learns which
    user ids exist."""
    if invitation is not None:
        cursor.execute(
            dialect.sql(
                "UPDATE muca_invitations SET uses_left = uses_left - 1"
                " WHERE code = ? AND uses_left > 0 AND revoked = 0"
                " AND (expires IS NULL OR expires > ?)"
            ),
            (invitation, now_ms),
        )
        if cursor.rowcount != 1:
            raise AccountRefused(
                BAD_INVITE,
                "this invitation code is unknown, used up, expired or revoked",
            )
    if not add_account(cursor, dialect, account):
        raise AccountRefused(UID_TAKEN, "this user id has an account already")
    detail = None if invitation is None else f"invitation {invitation}"
    audit(cursor, dialect, now_ms, account.uid, "register", account.uid, detail)


def add_invitation(cursor: Any, dialect: Dialect, invitation: Invitation) -> None:
    """Keep a new invitation code."""
    cursor.execute(
        dialect.sql(
            "INSERT INTO muca_invitations"
            " (code, uses_left, expires, revoked, created_by, created)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        ),
        (
            invitation.code,
            invitation.uses_left,
            invitation.expires,
            int(invitation.revoked),
            invitation.created_by,
            invitation.created,
        ),
    )


def list_invitations(cursor: Any) -> list[Invitation]:
    """Every invitation, the oldest first."""
    cursor.execute(
        "SELECT code, uses_left, expires, revoked, created_by, created"
        " FROM muca_invitations ORDER BY created, code"
    )
    return [
        Invitation(
            code,
            int(uses),
            None if expires is None else int(expires),
            bool(revoked),
            by,
            int(created),
        )
        for code, uses, expires, revoked, by, created in cursor.fetchall()
    ]


def revoke_invitation(cursor: Any, dialect: Dialect, code: str) -> bool:
    """Revoke ``code``; False when there is no such invitation."""
    cursor.execute(
        dialect.sql("UPDATE muca_invitations SET revoked = 1 WHERE code = ?"), (code,)
    )
    return cursor.rowcount == 1


def audit(
    cursor: Any,
    dialect: Dialect,
    ts: int,
    actor: str,
    action: str,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    """Add a line to the audit log."""
    cursor.execute(
        dialect.sql(
            "INSERT INTO muca_audit (ts, actor, action, target, detail)"
            " VALUES (?, ?, ?, ?, ?)"
        ),
        (ts, actor, action, target, detail),
    )


def read_audit(cursor: Any, dialect: Dialect, since_ms: int = 0) -> list[AuditEntry]:
    """The audit log from ``since_ms`` on, in the order it was written."""
    cursor.execute(
        dialect.sql(
            "SELECT ts, actor, action, target, detail FROM muca_audit"
            " WHERE ts >= ? ORDER BY ts, id"
        ),
        (since_ms,),
    )
    return [
        AuditEntry(int(ts), actor, action, target, detail)
        for ts, actor, action, target, detail in cursor.fetchall()
    ]
