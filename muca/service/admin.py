"""``muca-admin``: the accounts, invitations and audit log of a server's
database (``--db``, as ``twistd muca`` is given it), from a shell; a
composition root of its own, beside ``twistd muca``'s.

It works while servers run on the same database (a cluster's nodes
included): it opens its own connection, changes the accounts' rows in short
transactions, and the servers read the roles and disabled flags of their
joined users every few seconds (``muca.accounts.watch``). Every mistake is
one line on stderr and exit status 2; ``muca-admin VERB --help`` says what
each verb takes.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import secrets
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn, TextIO

from argon2 import PasswordHasher

from muca.accounts.passwords import password_problem
from muca.protocol.messages import ProtocolError, normal_form, room_name, uid_problem
from muca.server.auth import password_line_problem
from muca.store import accounts as rows
from muca.store import sql
from muca.store.base import StoreError

#: Where the server keeps its database by default (``twistd muca --db``).
DEFAULT_DB = "muca.db"
#: An invitation's uses and lifetime unless given.
DEFAULT_USES = 1
DEFAULT_EXPIRES = "7d"
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

EXIT_MISTAKE = 2


class Mistake(Exception):
    """What the user got wrong: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its mistakes as one line (no usage block) and exit 2."""

    def error(self, message: str) -> NoReturn:
        raise Mistake(f"{self.prog}: {message} (see {self.prog} --help)")


# -- the database ------------------------------------------------------


class Database:
    """A connection to the server's database and its dialect."""

    def __init__(self, connection: Any, dialect: sql.Dialect, where: str) -> None:
        self.connection = connection
        self.dialect = dialect
        self.where = where

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in one committed transaction (rolled back on an error)."""
        cursor = self.connection.cursor()
        if self.dialect.placeholder == "?":
            # IMMEDIATE: wait for a running server's write, not fail midway.
            cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            self.connection.rollback()
            raise
        self.connection.commit()

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def open_database(where: str, create: bool) -> Database:
    """The database ``where`` names (an SQLite path, a ``postgresql://`` URL
    or a libpq conninfo), its schema made or migrated as the server does;
    ``create``: an SQLite file that does not exist yet is made."""
    where = where.strip()
    if not where or where.lower() == "none":
        raise Mistake("muca-admin: --db: the accounts need a database, not none")
    if re.match(r"^postgres(ql)?://", where, re.IGNORECASE) or "=" in where:
        return _open_postgres(where)
    return _open_sqlite(where, create)


def _open_sqlite(path: str, create: bool) -> Database:
    from muca.store.sqlite import DIALECT
    from muca.store.sqlite_file import check_file, refuse_foreign_tables

    if not create and not os.path.exists(path):
        raise Mistake(
            f"muca-admin: --db {path}: no such database (give the server's --db)"
        )
    check_file(path)
    connection = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    try:
        refuse_foreign_tables(path, connection)
        database = Database(connection, DIALECT, path)
        with database.transaction() as cursor:
            sql.create_or_check(cursor, DIALECT)
    except BaseException:
        connection.close()
        raise
    return database


def _open_postgres(conninfo: str) -> Database:
    import psycopg

    from muca.store.postgres import DIALECT, SCHEMA_LOCK, describe

    try:
        connection = psycopg.connect(conninfo, connect_timeout=10)
    except psycopg.Error as problem:
        raise StoreError(f"PostgreSQL {describe(conninfo)}: {problem}") from None
    database = Database(connection, DIALECT, describe(conninfo))
    with database.transaction() as cursor:
        cursor.execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
        sql.create_or_check(cursor, DIALECT)
    return database


# -- what the verbs share ---------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _actor() -> str:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.getuid())
    return f"muca-admin:{who}"


def _uid(value: str) -> str:
    uid = normal_form(value)
    problem = uid_problem(uid)
    if problem:
        raise Mistake(f"muca-admin: {problem.replace('UID', 'the user id', 1)}")
    return uid


def read_password(uid: str, stdin: TextIO) -> str:
    """A new password for ``uid``: asked twice on a terminal, else the first
    line of stdin; refused unless ``password_problem`` passes it."""
    if stdin.isatty():
        first = getpass.getpass(f"New password for {uid}: ")
        second = getpass.getpass("The same password again: ")
        if first != second:
            raise Mistake("muca-admin: the two passwords differ; nothing changed")
        password = first
    else:
        password = stdin.readline().rstrip("\r\n")
        if not password:
            raise Mistake("muca-admin: no password on stdin (one line)")
    problem = password_problem(uid, password)
    if problem:
        raise Mistake(f"muca-admin: weak password: {problem}")
    return password


def parse_duration(text: str) -> int:
    """Seconds in ``30m``, ``12h``, ``7d``, ``2w``."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise Mistake(
            f"muca-admin: --expires: {text!r} is no duration (30m, 12h, 7d, 2w)"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_date(text: str) -> int:
    """ms since the epoch of an ISO date or time (UTC unless it says)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Mistake(
            f"muca-admin: --since: {text!r} is no date (2026-12-08 or 2026-12-08T09:30)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# -- the verbs ------------------------------------------------------------


def user_add(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    uid = _uid(args.uid)
    password = read_password(uid, args.stdin)
    role = rows.ADMIN if args.admin else rows.MEMBER
    account = rows.Account(uid, PasswordHasher().hash(password), role, False, _now_ms())
    with db.transaction() as cursor:
        if not rows.add_account(cursor, db.dialect, account):
            raise Mistake(f"muca-admin: {uid!r} has an account already")
        rows.audit(cursor, db.dialect, account.created, _actor(), "user add", uid, role)
    print(f"added account {uid} ({role})", file=out)


def user_list(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    with db.transaction() as cursor:
        accounts = rows.list_accounts(cursor)
    for account in accounts:
        state = "disabled" if account.disabled else "enabled"
        print(
            f"{account.uid}\t{account.role}\t{state}\tcreated {_when(account.created)}",
            file=out,
        )


def _change(
    db: Database, uid: str, action: str, detail: str | None, **change: Any
) -> None:
    with db.transaction() as cursor:
        if not rows.update_account(cursor, db.dialect, uid, **change):
            raise Mistake(f"muca-admin: no account {uid!r}")
        rows.audit(cursor, db.dialect, _now_ms(), _actor(), action, uid, detail)


def user_disable(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    uid = _uid(args.uid)
    _change(db, uid, "user disable", None, disabled=True)
    print(f"disabled {uid}", file=out)


def user_enable(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    uid = _uid(args.uid)
    _change(db, uid, "user enable", None, disabled=False)
    print(f"enabled {uid}", file=out)


def user_password(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    uid = _uid(args.uid)
    with db.transaction() as cursor:
        if rows.get_account(cursor, db.dialect, uid) is None:
            raise Mistake(f"muca-admin: no account {uid!r}")
    encoded = PasswordHasher().hash(read_password(uid, args.stdin))
    _change(db, uid, "user password", None, password_hash=encoded)
    print(f"new password for {uid}", file=out)


def user_role(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    uid = _uid(args.uid)
    _change(db, uid, "user role", args.role, role=args.role)
    print(f"{uid} is {args.role}", file=out)


def invite_create(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    if args.uses < 1:
        raise Mistake("muca-admin: --uses: at least 1")
    now = _now_ms()
    expires = (
        None if args.expires == "never" else now + parse_duration(args.expires) * 1000
    )
    code = secrets.token_urlsafe(16)
    invitation = rows.Invitation(code, args.uses, expires, False, _actor(), now)
    with db.transaction() as cursor:
        rows.add_invitation(cursor, db.dialect, invitation)
        rows.audit(
            cursor,
            db.dialect,
            now,
            _actor(),
            "invite create",
            code,
            f"{args.uses} uses, expires {_when(expires)}",
        )
    print(code, file=out)


def invite_list(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    now = _now_ms()
    with db.transaction() as cursor:
        invitations = rows.list_invitations(cursor)
    for invitation in invitations:
        if invitation.revoked:
            state = "revoked"
        elif invitation.uses_left <= 0:
            state = "used up"
        elif not invitation.usable(now):
            state = "expired"
        else:
            state = "usable"
        print(
            f"{invitation.code}\t{state}\t{invitation.uses_left} uses left"
            f"\texpires {_when(invitation.expires)}\tby {invitation.created_by}",
            file=out,
        )


def invite_revoke(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    with db.transaction() as cursor:
        if not rows.revoke_invitation(cursor, db.dialect, args.code):
            raise Mistake(f"muca-admin: no invitation {args.code!r}")
        rows.audit(cursor, db.dialect, _now_ms(), _actor(), "invite revoke", args.code)
    print(f"revoked {args.code}", file=out)


def audit(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    since = 0 if args.since is None else parse_date(args.since)
    with db.transaction() as cursor:
        entries = rows.read_audit(cursor, db.dialect, since)
    for entry in entries:
        line = f"{_when(entry.ts)}\t{entry.actor}\t{entry.action}"
        if entry.target is not None:
            line += f"\t{entry.target}"
        if entry.detail is not None:
            line += f"\t{entry.detail}"
        print(line, file=out)


def room_moderator(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    uid = _uid(args.uid)
    try:
        room = room_name(args.room, "room moderator")
    except ProtocolError as problem:
        raise Mistake(f"muca-admin: {problem.reason}") from None
    named = not args.remove
    with db.transaction() as cursor:
        sql.save_moderator(cursor, db.dialect, room, uid, named)
        detail = f"room {room}" + ("" if named else " (removed)")
        rows.audit(
            cursor, db.dialect, _now_ms(), _actor(), "room moderator", uid, detail
        )
    state = "a moderator" if named else "no longer a moderator"
    print(f"{uid} is {state} of {room}", file=out)


def import_users(db: Database, args: argparse.Namespace, out: TextIO) -> None:
    users = read_password_file(args.file)
    hasher = PasswordHasher()
    now = _now_ms()
    added, skipped = [], []
    with db.transaction() as cursor:
        for uid, password in users:
            account = rows.Account(uid, hasher.hash(password), created=now)
            if rows.add_account(cursor, db.dialect, account):
                added.append(uid)
            else:
                skipped.append(uid)
        rows.audit(
            cursor,
            db.dialect,
            now,
            _actor(),
            "import-users",
            None,
            f"{len(added)} from {os.path.basename(args.file)}",
        )
    line = f"imported {len(added)} accounts"
    if skipped:
        line += f"; kept the {len(skipped)} that had one: {', '.join(skipped)}"
    print(line, file=out)


def read_password_file(path: str) -> list[tuple[str, str]]:
    """The ``(uid, password)`` lines of a ``--auth file:`` file, or a
    :class:`Mistake` naming the line (never echoing a password)."""
    try:
        with open(path, "rb") as lines:
            raw_lines = lines.read().splitlines()
    except OSError as failed:
        raise Mistake(f"muca-admin: {path}: {failed.strerror}") from None
    users = []
    for number, raw in enumerate(raw_lines, 1):
        line = raw.rstrip()
        if not line:
            continue
        problem = password_line_problem(line)
        if problem:
            raise Mistake(f"muca-admin: {path}: line {number} {problem}")
        uid, password = line.decode("utf-8").split(":")
        uid = normal_form(uid)
        if uid_problem(uid):
            raise Mistake(f"muca-admin: {path}: line {number}: not a user id")
        users.append((uid, password))
    return users


# -- the command line ----------------------------------------------------

Verb = Callable[[Database, argparse.Namespace, TextIO], None]

#: Verbs that only read: they never make a database that is not there.
_READERS = {user_list, invite_list, audit}


def _verb(group: Any, name: str, what: str) -> argparse.ArgumentParser:
    """A verb whose own ``--help`` says what it does, as its parent's does."""
    return group.add_parser(name, help=what, description=what)


def make_parser() -> argparse.ArgumentParser:
    """``muca-admin``'s options and verbs."""
    parser = _Parser(
        prog="muca-admin",
        description="Accounts, invitations and the audit log of a MUCA"
        " server's database (twistd muca --auth db).",
    )
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        help="the server's database: an SQLite file, a postgresql:// URL or a"
        f" libpq conninfo (default: {DEFAULT_DB})",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    verbs.required = True

    user = _verb(verbs, "user", "accounts").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser
    )
    user.required = True
    add = _verb(
        user,
        "add",
        "make an account (its password asked twice on a terminal, or"
        " the first line of stdin)",
    )
    add.add_argument("uid")
    add.add_argument("--admin", action="store_true", help="a server admin")
    add.set_defaults(run=user_add)
    _verb(user, "list", "every account").set_defaults(run=user_list)
    for name, run, what in (
        ("disable", user_disable, "no more logins; a joined user is disconnected"),
        ("enable", user_enable, "logins again"),
        ("password", user_password, "a new password (as for add)"),
    ):
        verb = _verb(user, name, what)
        verb.add_argument("uid")
        verb.set_defaults(run=run)
    role = _verb(user, "role", "make an account admin or member")
    role.add_argument("uid")
    role.add_argument("role", choices=rows.ROLES)
    role.set_defaults(run=user_role)

    invite = _verb(verbs, "invite", "invitation codes").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser
    )
    invite.required = True
    create = _verb(invite, "create", "a new code, printed alone")
    create.add_argument(
        "--uses", type=int, default=DEFAULT_USES, help="registrations it takes"
    )
    create.add_argument(
        "--expires",
        default=DEFAULT_EXPIRES,
        help=f"lifetime: 30m, 12h, 7d, 2w or never (default {DEFAULT_EXPIRES})",
    )
    create.set_defaults(run=invite_create)
    _verb(invite, "list", "every code and its state").set_defaults(run=invite_list)
    revoke = _verb(invite, "revoke", "a code takes no more registrations")
    revoke.add_argument("code")
    revoke.set_defaults(run=invite_revoke)

    log = _verb(verbs, "audit", "what was done to accounts and codes")
    log.add_argument("--since", help="from this date or time on (UTC)")
    log.set_defaults(run=audit)

    room = _verb(verbs, "room", "rooms").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser
    )
    room.required = True
    moderator = _verb(room, "moderator", "name a moderator of a room")
    moderator.add_argument("room")
    moderator.add_argument("uid")
    moderator.add_argument(
        "--remove", action="store_true", help="no longer a moderator of it"
    )
    moderator.set_defaults(run=room_moderator)

    imports = _verb(
        verbs, "import-users", "accounts from a --auth file: uid:password file"
    )
    imports.add_argument("file")
    imports.set_defaults(run=import_users)
    return parser


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one verb; the exit status (0, or 2 after a mistake)."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        args = make_parser().parse_args(argv)
        args.stdin = stdin
        run: Verb = args.run
        database = open_database(args.db, create=run not in _READERS)
        try:
            run(database, args, stdout)
        finally:
            database.close()
    except Mistake as mistake:
        print(mistake, file=stderr)
        return EXIT_MISTAKE
    except StoreError as problem:
        print(f"muca-admin: --db: {problem}", file=stderr)
        return EXIT_MISTAKE
    except (sqlite3.Error, OSError) as problem:
        print(f"muca-admin: --db {args.db}: {sql_one_line(problem)}", file=stderr)
        return EXIT_MISTAKE
    except Exception as problem:
        # A driver's error (psycopg's), still one line.
        print(f"muca-admin: {sql_one_line(problem)}", file=stderr)
        return EXIT_MISTAKE
    return 0


def sql_one_line(problem: BaseException) -> str:
    """A driver's error message on one line."""
    return " ".join(str(problem).split())


if __name__ == "__main__":
    sys.exit(main())
