"""History with a real ``twistd -n muca``: killed with SIGKILL while clients
send, restarted on the same database, nothing anyone received is lost or
duplicated and ids go on; a database that cannot be opened is one line and
a non-zero exit before anything listens."""

from __future__ import annotations

import os
import signal
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from muca.store.sqlite import SQLiteStore
from tests.support import RawClient, connect, join, send
from tests.support import postgres as pgsupport
from tests.support.postgres import free_port
from tests.support.twistd import (
    TWISTD,
    TwistdProcess,
    fresh_directory,
    refused_start,
    start_twistd,
)

SENDERS = [(f"S{i}", f"s{i}@hku.hk") for i in range(3)]


class KilledServerTestsMixin:
    """SIGKILL while three clients send; restart on the same database."""

    def db(self) -> str:
        raise NotImplementedError

    async def test_every_message_received_survives_a_kill(self) -> None:
        database = self.db()
        server = await start_twistd(self, "--db", database, "--rate-limit", "0")
        clients: list[RawClient] = []
        for nickname, uid in SENDERS:
            client = await connect(self, server.port)
            client.send_json(join(nickname, uid))
            await client.next_object()
            clients.append(client)
        await deferLater(reactor, 0.2)
        # Each sends in bursts; once messages flow, the server is killed in
        # the middle of it, and the clients go on sending a little.
        killed_at = None
        for burst in range(200):
            for (_, uid), client in zip(SENDERS, clients, strict=True):
                for i in range(10):
                    client.send_json(send(f"{uid} {burst}.{i}", [], uid))
            await deferLater(reactor, 0.02)
            flowing = sum(len(c.objects) for c in clients) > 150
            if killed_at is None and flowing:
                os.kill(server.pid, signal.SIGKILL)
                killed_at = burst
            if killed_at is not None and burst >= killed_at + 2:
                break
        await server.process.ended()
        received = {
            (o["ID"], o["FROM"], o["MSG"])
            for client in clients
            for o in client.objects
            if o.get("CMD") == "MSG"
        }
        self.assertGreater(len(received), 50)

        again = await start_twistd(self, "--db", database)
        reader = await connect(self, again.port)
        reader.send_json(join("R", "r@hku.hk", CAPS=["history"], SINCE=0))
        history = await read_until_marker(reader)
        while history[-1]["MORE"]:
            oldest = min(o["ID"] for o in history if o["CMD"] == "MSG")
            reader.send_json({"CMD": "HISTORY", "BEFORE": oldest, "LIMIT": 200})
            history += await read_until_marker(reader)
        stored = [
            (o["ID"], o["FROM"], o["MSG"]) for o in history if o.get("CMD") == "MSG"
        ]
        self.assertEqual(len(stored), len(set(stored)), "duplicates")
        self.assertEqual(len({m[0] for m in stored}), len(stored), "an id twice")
        self.assertLessEqual(received, set(stored))
        # Ids go on above every stored one.
        sender = await connect(self, again.port)
        sender.send_json(join("New", "new@hku.hk"))
        await sender.next_objects(2)
        sender.send_json(send("after the restart", [], "new@hku.hk"))
        live = await reader.next_object()
        while live.get("CMD") != "MSG":
            live = await reader.next_object()
        self.assertEqual(live["MSG"], "after the restart")
        self.assertGreater(live["ID"], max(m[0] for m in stored))


async def read_until_marker(client: RawClient) -> list[dict[str, Any]]:
    """Everything up to and including the next HISTORY marker."""
    got: list[dict[str, Any]] = []
    for _ in range(1500):
        obj = await client.next_object()
        got.append(obj)
        if obj.get("CMD") == "HISTORY":
            break
    return got


class SQLiteKillTests(KilledServerTestsMixin, TestCase):
    """kill -9 with the history in an SQLite file."""

    def db(self) -> str:
        return os.path.join(fresh_directory(self), "muca.db")


class PostgresKillTests(KilledServerTestsMixin, TestCase):
    """kill -9 with the history in PostgreSQL."""

    def db(self) -> str:
        return pgsupport.fresh_database(self)


class StartupErrorTests(TestCase):
    """A database that cannot be used: one line, non-zero exit, no listener."""

    async def refused(self, *args: str) -> str:
        """Run ``twistd -n muca ARGS``; return its one complaint line, which
        it wrote alone on stderr."""
        line = await refused_start(self, *args)
        self.assertTrue(line.startswith("muca: "), line)
        return line

    async def test_with_stderr_going_nowhere_the_line_is_logged(self) -> None:
        # As for a daemon, whose stderr is /dev/null: the log keeps it.
        process = TwistdProcess()
        argv = [*TWISTD, "-n", "--pidfile=", "muca", "--port", "0", "--db", "/no/x.db"]
        shell = ["sh", "-c", 'exec "$@" 2>/dev/null', "sh", *argv]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        reactor.spawnProcess(
            process, "/bin/sh", shell, env=env, path=fresh_directory(self)
        )
        (reason,) = await process.ended()
        self.assertEqual(reason.value.exitCode, 1)
        logged = [line for line in process.output.splitlines() if "muca:" in line]
        self.assertEqual(len(logged), 1, process.output)
        self.assertRegex(
            logged[0],
            r"\[muca\.service\.tap#error\] muca: cannot open message database "
            r"/no/x\.db: directory /no does not exist$",
        )

    async def test_missing_directory(self) -> None:
        line = await self.refused("--db", "/nonexistent/dir/muca.db")
        self.assertEqual(
            line,
            "muca: cannot open message database /nonexistent/dir/muca.db: "
            "directory /nonexistent/dir does not exist",
        )

    async def test_foreign_file_is_refused_and_left_untouched(self) -> None:
        path = os.path.join(fresh_directory(self), "notes.txt")
        with open(path, "w") as notes:
            notes.write("my notes\n")
        line = await self.refused("--db", path)
        self.assertIn("is not a MUCA database", line)
        with open(path) as notes:
            self.assertEqual(notes.read(), "my notes\n")

    async def test_a_database_another_server_uses_is_refused(self) -> None:
        path = os.path.join(fresh_directory(self), "shared.db")
        running = SQLiteStore(path)
        await running.open()
        self.addCleanup(running.close)
        line = await self.refused("--db", path)
        self.assertEqual(
            line, f"muca: message database {path} is in use by another MUCA server"
        )

    async def test_postgres_down(self) -> None:
        url = f"postgresql://muca@127.0.0.1:{free_port()}/muca"
        line = await self.refused("--db", url)
        self.assertRegex(line, r"^muca: cannot open PostgreSQL database muca on ")
        self.assertIn("refused", line)
