"""Choose the store backend from the ``--db`` option's value."""

from __future__ import annotations

import re

from muca.store.base import MessageStore, StoreError

_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)


def open_store(spec: str) -> MessageStore | None:
    """The store ``spec`` names, not yet opened (call its ``open()``).

    ``"none"``: no store (None).  A ``postgresql://`` or ``postgres://`` URL,
    or a libpq ``key=value`` string (anything containing ``=``): PostgreSQL.
    Anything else: the path of an SQLite file.
    """
    spec = spec.strip()
    if not spec:
        raise StoreError("no message database given (use a path, a URL or 'none')")
    if spec.lower() == "none":
        return None
    if _URL.match(spec) or "=" in spec:
        # Imported here so a server on SQLite needs no PostgreSQL driver.
        from muca.store.postgres import PostgresStore

        return PostgresStore(spec)
    from muca.store.sqlite import SQLiteStore

    return SQLiteStore(spec)
