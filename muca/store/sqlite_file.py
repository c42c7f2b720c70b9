"""The SQLite file and its directory, checked when the store opens: a file
that is not a MUCA database is refused and left untouched, and a file or
directory the server cannot write is named with what is wrong with it,
rather than SQLite's "unable to open database file"."""

from __future__ import annotations

import errno
import os
import sqlite3

from muca.store.base import StoreError

SQLITE_HEADER = b"SQLite format 3\x00"


def check_file(path: str) -> None:
    """Before SQLite sees ``path``: refuse a directory, a missing directory,
    a file that is not SQLite's, and a file or directory that cannot be
    written (SQLite would open it read-only, or fail vaguely)."""
    # SQLite would happily turn an empty-looking path into a database, and
    # we must never write to someone else's file.
    if os.path.isdir(path):
        raise StoreError(f"cannot open message database {path}: a directory")
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.stat(parent)
    except FileNotFoundError:
        raise StoreError(
            f"cannot open message database {path}: directory {parent} does not exist"
        ) from None
    except OSError as exc:
        why = "permission denied" if exc.errno == errno.EACCES else exc.strerror
        raise StoreError(
            f"cannot open message database {path}: directory {parent} cannot be"
            f" reached: {why}"
        ) from None
    if not os.path.isdir(parent):
        raise StoreError(
            f"cannot open message database {path}: {parent} is not a directory"
        )
    try:
        with open(path, "rb") as existing:
            header = existing.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        _check_directory(parent, os.path.basename(path))
        return
    except OSError as exc:
        raise StoreError(
            f"cannot open message database {path}: {exc.strerror}"
        ) from None
    if header and header != SQLITE_HEADER:
        raise StoreError(
            f"{path} is not a MUCA database (not an SQLite file); left untouched"
        )
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise StoreError(
                f"message database {path} is read-only: its file system is"
                " mounted read-only"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise StoreError(
                f"message database {path} is read-only: permission denied"
            ) from None
        raise StoreError(
            f"cannot open message database {path}: {exc.strerror}"
        ) from None
    # Its log, its shared memory and the spool are created beside it.
    _check_directory(parent, os.path.basename(path) + "-wal")


def _check_directory(directory: str, name: str) -> None:
    """Raise ``StoreError`` unless files can be created in ``directory``
    (``name``: the first the store would create there)."""
    if os.statvfs(directory).f_flag & os.ST_RDONLY:
        raise cannot_create(name, directory, errno.EROFS)
    effective = os.access in os.supports_effective_ids
    if not os.access(directory, os.W_OK | os.X_OK, effective_ids=effective):
        raise cannot_create(name, directory, errno.EACCES)


def cannot_create(name: str, directory: str, code: int | None) -> StoreError:
    """ "cannot create NAME in DIRECTORY: why", for a failed creation."""
    if code == errno.EROFS:
        why = "the file system is read-only"
    elif code in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    else:
        why = os.strerror(code) if code else "unknown error"
    return StoreError(f"cannot create {name} in {directory}: {why}")


def refuse_foreign_tables(path: str, connection: sqlite3.Connection) -> None:
    """Refuse an SQLite file that holds tables but not MUCA's."""
    # A read only: SQLite writes nothing to the file for it.
    try:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path} is not a MUCA database ({exc}); left untouched"
        ) from None
    if tables and "muca_meta" not in tables:
        names = ", ".join(sorted(tables)[:5])
        raise StoreError(
            f"{path} is not a MUCA database (it holds other tables: "
            f"{names}); left untouched"
        )
