"""Accounts in tests: ``muca-admin`` run as a subprocess, real ``twistd -n
muca --auth db`` servers on SQLite or PostgreSQL, and the REGISTER and JOIN
exchanges a raw client makes with them."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import utils
from twisted.trial.unittest import TestCase

from tests.support import RawClient, connect, join
from tests.support import postgres as pgsupport
from tests.support.twistd import Twistd, fresh_directory, start_twistd

#: The console script setup.cfg installs, beside this interpreter.
MUCA_ADMIN = str(Path(sys.executable).with_name("muca-admin"))


async def run_admin(db: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run ``muca-admin --db DB ARGS`` with ``stdin`` (not a terminal):
    its exit status, stdout and stderr. Asynchronous: a server in this
    process goes on meanwhile."""
    shell = 'printf \'%s\' "$MUCA_INPUT" | exec "$@"'
    out, err, code = await utils.getProcessOutputAndValue(
        "/bin/sh",
        ["-c", shell, "sh", MUCA_ADMIN, "--db", db, *args],
        env={**os.environ, "MUCA_INPUT": stdin},
    )
    return code, out.decode("utf-8"), err.decode("utf-8")


class SQLiteAccounts:
    """Servers on an SQLite file of the test's own (``self.db``)."""

    def setUp(self) -> None:
        self.db = os.path.join(fresh_directory(self), "muca.db")  # type: ignore[arg-type]


class PostgresAccounts:
    """Servers on a fresh database of a real PostgreSQL (``self.db``)."""

    def setUp(self) -> None:
        self.db = pgsupport.fresh_database(self)  # type: ignore[arg-type]


class AccountsCase(TestCase if TYPE_CHECKING else object):
    """Helpers over ``self.db`` (given by :class:`SQLiteAccounts` or
    :class:`PostgresAccounts`), mixed into a ``TestCase``."""

    db: str

    async def server(self, *args: str) -> Twistd:
        """A real ``twistd -n muca --auth db --db DB ARGS``."""
        return await start_twistd(self, "--auth", "db", "--db", self.db, *args)

    async def admin(self, *args: str, stdin: str = "") -> str:
        """``muca-admin`` that must succeed: its stdout."""
        code, out, err = await run_admin(self.db, *args, stdin=stdin)
        self.assertEqual((code, err), (0, ""), out)
        return out

    async def client(self, port: int) -> RawClient:
        """A raw client on the server's port."""
        return await connect(self, port)

    async def register(self, port: int, uid: str, password: str, **extra: Any) -> Any:
        """The answer to a ``REGISTER`` on a new connection."""
        client = await self.client(port)
        client.send_json({"CMD": "REGISTER", "UID": uid, "PASS": password, **extra})
        return await client.next_object()

    async def login(self, port: int, uid: str, password: str) -> Any:
        """The ``ACK`` of a ``JOIN`` with ``PASS`` on a new connection."""
        client = await self.client(port)
        client.send_json(join("Nick" + str(abs(hash(uid)) % 1000), uid, PASS=password))
        return await client.next_object()


#: Runs ``muca-admin ARGS`` on a pseudo-terminal of its own (its
#: controlling terminal, where getpass asks), answers each prompt that ends
#: in ": " with the next line of its stdin, and prints what the terminal
#: showed; its exit status is muca-admin's.
_ON_A_TERMINAL = r"""
import os, pty, sys
answers = sys.stdin.read().split("\n")
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
shown = b""
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    shown += chunk
    if shown.endswith(b": ") and answers:
        os.write(fd, answers.pop(0).encode() + b"\n")
_, status = os.waitpid(pid, 0)
sys.stdout.write(shown.decode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


async def run_admin_on_terminal(
    db: str, *args: str, answers: list[str]
) -> tuple[int, str]:
    """Run ``muca-admin --db DB ARGS`` on a pseudo-terminal, typing
    ``answers`` at its prompts: its exit status and what the terminal
    showed (prompts, output and errors; the passwords are not echoed)."""
    shell = 'printf \'%s\' "$MUCA_INPUT" | exec "$@"'
    out, err, code = await utils.getProcessOutputAndValue(
        "/bin/sh",
        [
            "-c",
            shell,
            "sh",
            sys.executable,
            "-c",
            _ON_A_TERMINAL,
            MUCA_ADMIN,
            "--db",
            db,
            *args,
        ],
        env={**os.environ, "MUCA_INPUT": "\n".join(answers)},
    )
    assert not err, err
    return code, out.decode("utf-8").replace("\r\n", "\n")
