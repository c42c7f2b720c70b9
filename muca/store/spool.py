"""The spool: accepted messages appended to plain files beside the SQLite
database, before they are delivered and before SQLite has them.

Appending a few lines to a file is a ``write`` into the system's page cache,
as cheap as a log line; an SQLite transaction is not, and on a database
thread it costs the reactor thread the hand-over of Python's lock too.  So
the SQLite store writes every reactor turn's messages here, delivers them,
and moves them into SQLite in batches on its database thread (see
``SQLiteStore``).  What is in a spool file survives ``kill -9`` of the server
like a committed transaction does (both are in the page cache); at the next
open, what SQLite lacks is taken from the spool files, then they go.

A file holds one line per append: a JSON array of its messages, each an
array of id, time, sender, type, recipients, text, the sender's nickname
and the room (``""``: the default room; the nickname absent in lines written
before nicknames were kept, the room in those written before rooms were).  It is named
``<database>-spool.<n>``, and a new one is started once it passes
``SEGMENT_BYTES``, so that the files whose messages are all in SQLite can be
deleted while the server runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import sys
from collections.abc import Sequence

from muca.store.base import ChatMessage, StoreError
from muca.store.sqlite_file import cannot_create

#: A spool file is closed and a new one begun past this size.
SEGMENT_BYTES = 1 << 20

# No cycle check: a line holds only numbers, strings and flat lists.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False
)


def _line(messages: Sequence[ChatMessage]) -> str:
    return _ENCODER.encode(
        [
            [m.id, m.ts, m.sender, m.kind, m.recipients, m.text, m.nickname, m.room]
            for m in messages
        ]
    )


#: How U+0000 looks in a line (the encoder escapes it).
NUL_IN_LINE = "\\u0000"


def parse_line(line: str | bytes) -> list[ChatMessage]:
    """The messages of a spool line; raises ``ValueError`` if it is not one."""
    rows = json.loads(line)
    if not isinstance(rows, list):
        raise ValueError("not a spool line")
    return [_message(row) for row in rows]


def _message(row: object) -> ChatMessage:
    # Six fields before nicknames were kept (schema version 3), seven
    # before rooms were (version 4), eight since.
    if not isinstance(row, list) or len(row) not in (6, 7, 8):
        raise ValueError("not a spooled message")
    id_, ts, sender, kind, recipients, text = row[:6]
    nickname = row[6] if len(row) >= 7 else None
    room = row[7] if len(row) == 8 else ""
    fields = (id_, ts, sender, kind, text, room)
    if not (
        type(id_) is int
        and type(ts) is int
        and all(isinstance(v, str) for v in fields[2:])
        and isinstance(recipients, list)
        and all(isinstance(uid, str) for uid in recipients)
        and (nickname is None or isinstance(nickname, str))
    ):
        raise ValueError("not a spooled message")
    return ChatMessage(id_, ts, sender, kind, tuple(recipients), text, nickname, room)


class StoreGone(StoreError):
    """The database file was deleted or replaced while the server ran."""


class Spool:
    """The spool files of the database at ``database_path``.

    ``lock``, ``recover``, ``start`` and ``watch`` run while the store
    opens; ``check``, ``write``, ``forget`` and ``close`` on the spool's own
    thread (``muca.store.spool_thread``), never on the reactor thread.
    """

    def __init__(self, database_path: str) -> None:
        self.database_path = database_path
        self._pattern = re.compile(
            re.escape(os.path.basename(database_path)) + r"-spool\.(\d+)$"
        )
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._claim: socket.socket | None = None
        # The database file's (st_dev, st_ino) once opened (see watch).
        self._identity: tuple[int, int] | None = None
        self._number = 0
        self._size = 0
        # Files written to, oldest first: (number, newest id in it).
        self._files: list[tuple[int, int]] = []

    def path(self, number: int) -> str:
        """The name of spool file ``number``."""
        return f"{self.database_path}-spool.{number}"

    def existing(self) -> list[int]:
        """The numbers of the spool files on disk, oldest first."""
        directory = os.path.dirname(os.path.abspath(self.database_path))
        numbers = []
        for name in os.listdir(directory):
            match = self._pattern.match(name)
            if match:
                numbers.append(int(match.group(1)))
        return sorted(numbers)

    def recover(self) -> list[tuple[list[ChatMessage], str]]:
        """Every line of the spool files, with its messages, in file order.

        A line cut short (the server was killed while writing it, so none
        of its messages was delivered) ends what is read from its file.
        """
        lines: list[tuple[list[ChatMessage], str]] = []
        for number in self.existing():
            try:
                with open(self.path(number), "rb") as spooled:
                    data = spooled.read()
            except OSError as exc:
                raise StoreError(
                    f"cannot read {self.path(number)}: {exc.strerror}"
                ) from None
            for line in data.split(b"\n")[:-1]:
                try:
                    messages = parse_line(line)
                except (ValueError, TypeError):
                    break
                if messages:
                    lines.append((messages, line.decode("utf-8")))
        return lines

    def lock(self) -> None:
        """Claim the database for this process; raises ``StoreError`` when
        another server has it (two would give the same ids)."""
        path = f"{self.database_path}-spool.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            directory = os.path.dirname(os.path.abspath(path))
            name = os.path.basename(path)
            raise cannot_create(name, directory, exc.errno) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _in_use(self.database_path) from None
        self._lock_fd = fd
        try:
            self._claim = _claim_name(self.database_path)
        except StoreError:
            self.unlock()
            raise

    def unlock(self) -> None:
        """Let another process have the database."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)
        claim, self._claim = self._claim, None
        if claim is not None:
            claim.close()

    def watch(self) -> None:
        """Remember which file the database is, for ``check``."""
        found = os.stat(self.database_path)
        self._identity = (found.st_dev, found.st_ino)

    def check(self) -> None:
        """Raise ``StoreGone`` unless the database file is still the one
        opened (``StoreError`` if that cannot be known now); a deleted spool
        file is left for a new one."""
        path = self.database_path
        try:
            found = os.stat(path)
        except FileNotFoundError:
            raise StoreGone(
                f"message database {path} was deleted while the server ran"
            ) from None
        except OSError as exc:
            # Not known to be gone (an I/O error may pass): this write fails.
            raise StoreError(
                f"message database {path} cannot be checked: {exc.strerror}"
            ) from None
        if (found.st_dev, found.st_ino) != self._identity:
            raise StoreGone(
                f"message database {path} was replaced by another file while"
                " the server ran"
            )
        if self._fd is not None and os.fstat(self._fd).st_nlink == 0:
            # Never write into a deleted file: the next line begins a new one.
            self._close_file()

    def start(self) -> None:
        """Delete the old spool files (their messages are stored by now) and
        begin a new one."""
        numbers = self.existing()
        for number in numbers:
            self._remove(number)
        self._number = numbers[-1] if numbers else 0
        self._files = []
        self._begin()

    def _begin(self) -> None:
        self._number += 1
        path = self.path(self._number)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            self._fd = None
            raise StoreError(f"cannot create {path}: {exc.strerror}") from None
        self._size = 0

    def write(self, messages: Sequence[ChatMessage]) -> str:
        """Append ``messages`` as one line; return it (without its end).
        Raises ``StoreError`` (and leaves the file as it was) when it cannot
        be written whole, ``StoreGone`` when the database is gone."""
        self.check()
        if self._fd is None:
            self._begin()
        fd = self._fd
        assert fd is not None
        line = _line(messages)
        data = (line + "\n").encode("utf-8")
        try:
            written = os.write(fd, data)
            while written < len(data):
                written += os.write(fd, data[written:])
        except OSError as exc:
            try:
                os.ftruncate(fd, self._size)
                os.lseek(fd, self._size, os.SEEK_SET)
            except OSError:
                # Cannot even cut it back: a new file for what comes next.
                self._close_file()
            raise StoreError(
                f"cannot write {self.path(self._number)}: {exc.strerror}"
            ) from None
        self._size += len(data)
        newest = messages[-1].id
        if self._files and self._files[-1][0] == self._number:
            self._files[-1] = (self._number, newest)
        else:
            self._files.append((self._number, newest))
        if self._size >= SEGMENT_BYTES:
            self._close_file()
        return line

    def forget(self, upto: int) -> None:
        """Messages up to id ``upto`` are in SQLite: delete the closed files
        that hold nothing newer."""
        while self._files and self._files[0][1] <= upto:
            number = self._files[0][0]
            if number == self._number and self._fd is not None:
                if self._size < SEGMENT_BYTES // 4:
                    return  # the open file stays until it is fuller
                self._close_file()
            self._files.pop(0)
            self._remove(number)

    def close(self, everything_stored: bool) -> None:
        """Close the open file, delete every file when ``everything_stored``,
        and let the database go."""
        self._close_file()
        if everything_stored:
            for number in self.existing():
                self._remove(number)
            self._files = []
        self.unlock()

    def _close_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _remove(self, number: int) -> None:
        try:
            os.remove(self.path(number))
        except FileNotFoundError:
            pass


#: Prefix of the abstract socket names that claim a database (Linux).
_CLAIM_PREFIX = b"\0muca-database:"


def _claim_name(database_path: str) -> socket.socket | None:
    """On Linux, claim the database with an abstract Unix socket named after
    its directory (device and inode) and its file name; None elsewhere.

    Unlike the lock file, nothing in the file system can take it away: a
    server whose files were deleted under it still holds it, so a second
    server on the same path cannot start and give the same ids again.
    """
    if not sys.platform.startswith("linux"):
        return None
    real = os.path.realpath(database_path)
    directory = os.stat(os.path.dirname(real))
    key = f"{directory.st_dev}:{directory.st_ino}:{os.path.basename(real)}"
    name = _CLAIM_PREFIX + hashlib.sha256(key.encode()).hexdigest().encode()
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(name)
    except OSError:
        claim.close()
        raise _in_use(database_path) from None
    return claim


def _in_use(database_path: str) -> StoreError:
    return StoreError(
        f"message database {database_path} is in use by another MUCA server"
    )
