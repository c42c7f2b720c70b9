"""The store and the disk, with a real ``twistd -n muca``: a file system
frozen under traffic holds no join and loses no message; the database
deleted under the server is noticed, said once and refused, a second
server on the same path cannot start and give the same ids again, and a
read-only file system is one readable line."""

from __future__ import annotations

import glob
import json
import os
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.server.test_history_crash import read_until_marker
from tests.support import OKAY, RawClient, connect, join, send, until
from tests.support.disk import freeze, loop_mount, thaw
from tests.support.twistd import (
    WAIT,
    Twistd,
    fresh_directory,
    refused_start,
    start_twistd,
)
from tests.web.test_gateway import get

#: Seconds the file system stays frozen (backup snapshots take this long).
FROZEN = 8.0

STORE_UNAVAILABLE = "STORE_UNAVAILABLE"


async def joined(
    testcase: TestCase, port: int, nickname: str, **extra: Any
) -> RawClient:
    """A client that joined (its ACK and first LIST read)."""
    client = await connect(testcase, port)
    client.send_json(join(nickname, f"{nickname.lower()}@hku.hk", **extra))
    testcase.assertEqual(await client.next_object(), OKAY)
    testcase.assertEqual((await client.next_object())["CMD"], "LIST")
    return client


def texts(client: RawClient) -> list[str]:
    """The texts of the MSGs ``client`` received, in order."""
    return [o["MSG"] for o in client.objects if o.get("CMD") == "MSG"]


def refusals(client: RawClient) -> int:
    """How many STORE_UNAVAILABLE errors ``client`` received."""
    return sum(
        1
        for o in client.objects
        if o.get("CMD") == "ERROR" and o.get("CODE") == STORE_UNAVAILABLE
    )


async def history(testcase: TestCase, port: int) -> list[str]:
    """Every text a newcomer reads back from the server's history."""
    reader = await connect(testcase, port)
    reader.send_json(join("Reader", "reader@hku.hk", CAPS=["history"], SINCE=0))
    got = await read_until_marker(reader)
    return [o["MSG"] for o in got if o.get("CMD") == "MSG"]


async def stop(testcase: TestCase, server: Twistd) -> None:
    """SIGTERM, and wait until it has shut down cleanly."""
    server.terminate()
    await server.process.ended(WAIT)
    testcase.assertIn("Server Shut Down.", server.process.output)


class FrozenDiskTests(TestCase):
    """The database's file system frozen (``fsfreeze``) for 8 s while a
    client sends a broadcast every 0.2 s."""

    async def test_a_frozen_disk_holds_no_join_and_loses_no_message(self) -> None:
        mountpoint = loop_mount(self)
        database = os.path.join(mountpoint, "muca.db")
        server = await start_twistd(self, "--db", database, "--rate-limit", "0")
        sender = await joined(self, server.port, "Sender")
        listener = await joined(self, server.port, "Listener")
        sender.send_json(send("before", [], "sender@hku.hk"))
        await until(lambda: texts(listener) == ["before"], WAIT, "the first message")

        sent: list[str] = []
        frozen_at = time.monotonic()
        freeze(self, mountpoint)
        newcomer: RawClient | None = None
        ack_after = None
        refused_before_thaw = 0
        while time.monotonic() - frozen_at < FROZEN:
            sent.append(f"frozen {len(sent)}")
            sender.send_json(send(sent[-1], [], "sender@hku.hk"))
            await deferLater(reactor, 0.2)
            if newcomer is None and time.monotonic() - frozen_at > 1.0:
                # A join while the disk is stalled: answered while it still
                # is (it thaws only after this loop, so a join that waited
                # for the disk would get no answer at all).
                newcomer = await connect(self, server.port)
                asked = time.monotonic()
                newcomer.send_json(join("Newcomer", "newcomer@hku.hk"))
                self.assertEqual(await newcomer.next_object(), OKAY)
                self.assertEqual((await newcomer.next_object())["CMD"], "LIST")
                ack_after = time.monotonic() - asked
        refused_before_thaw = refusals(sender)
        delivered_before_thaw = len(texts(listener))
        thaw(mountpoint)

        # Each message sent is delivered or refused, none both, none lost.
        await until(
            lambda: len(texts(listener)) - 1 + refusals(sender) >= len(sent),
            WAIT,
            "every message delivered or refused",
        )
        # And the server takes messages again; once "after" is through,
        # nothing of the frozen ones is still on its way (one order).
        sender.send_json(send("after", [], "sender@hku.hk"))
        await until(lambda: texts(listener)[-1:] == ["after"], WAIT, "after")
        delivered = texts(listener)[1:-1]
        self.assertEqual(len(delivered) + refusals(sender), len(sent))
        self.assertEqual(delivered, [t for t in sent if t in delivered])  # in order
        self.assertEqual(delivered_before_thaw, 1)  # only "before"
        # The first one was on its way to the disk: stored when it thawed,
        # then delivered; those behind it were refused after a bound.
        self.assertEqual(delivered[0], "frozen 0")
        self.assertGreater(refused_before_thaw, 0)
        self.assertIsNotNone(ack_after)
        Logger().info("JOIN while frozen: ACK and LIST in {s:.3f} s", s=ack_after)

        await stop(self, server)
        again = await start_twistd(self, "--db", database)
        kept = await history(self, again.port)
        self.assertEqual(kept, ["before", *delivered, "after"])
        self.assertIn("the disk has taken no write for", server.process.output)
        self.assertIn("takes writes again", server.process.output)


class DeletedDatabaseTests(TestCase):
    """``rm muca.db*`` under a running server."""

    async def test_the_deleted_database_is_said_once_and_refuses_messages(
        self,
    ) -> None:
        directory = fresh_directory(self)
        database = os.path.join(directory, "muca.db")
        server = await start_twistd(
            self,
            "--db",
            database,
            "--rate-limit",
            "0",
            "--web",
            "tcp:0:interface=127.0.0.1",
        )
        web = int((await server.process.wait_for(r"Site starting on (\d+)")).group(1))
        sender = await joined(self, server.port, "Sender")
        listener = await joined(self, server.port, "Listener")
        sender.send_json(send("kept", [], "sender@hku.hk"))
        await until(lambda: texts(listener) == ["kept"], WAIT, "the first message")

        for path in glob.glob(database + "*"):
            os.remove(path)
        # Noticed without any traffic (a look once a second).
        gone = f"message database {database} was deleted while the server ran"
        await server.process.wait_for(gone)
        response, body = await get(web, "/healthz")
        self.assertEqual((response.code, body), (503, f"store: {gone}\n".encode()))
        for i in range(3):
            sender.send_json(send(f"lost {i}", [], "sender@hku.hk"))
        await until(lambda: refusals(sender) == 3, WAIT, "three refusals")
        # Chat that needs no store goes on: a newcomer joins, and the
        # listener hears of it after any delivery of the refused messages.
        await joined(self, server.port, "Newcomer")
        await until(
            lambda: any(
                o.get("CMD") == "LIST" and "newcomer@hku.hk" in json.dumps(o)
                for o in listener.objects
            ),
            WAIT,
            "the newcomer in the listener's roster",
        )
        self.assertEqual(texts(listener), ["kept"])
        errors = [
            line
            for line in server.process.output.splitlines()
            if "#error]" in line or "#critical]" in line
        ]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn(f"muca: {gone}; refusing messages from now on", errors[0])
        # Nothing was written into a file by that name meanwhile.
        self.assertEqual(glob.glob(database + "*"), [])


class SecondServerTests(TestCase):
    """A second server on the path of one that still runs, its lock file
    deleted: it must not start and give ids from 1 again."""

    async def second_is_refused(self, delete: str) -> RawClient:
        """Delete the first server's files matching ``delete``; return its
        sender (message 1 is out)."""
        directory = fresh_directory(self)
        database = os.path.join(directory, "muca.db")
        first = await start_twistd(self, "--db", database, "--rate-limit", "0")
        sender = await joined(self, first.port, "Sender")
        listener = await joined(self, first.port, "Listener")
        sender.send_json(send("one", [], "sender@hku.hk"))
        await until(lambda: texts(listener) == ["one"], WAIT, "message 1")
        for path in glob.glob(database + delete):
            os.remove(path)
        line = await refused_start(self, "--db", database)
        self.assertEqual(
            line, f"muca: message database {database} is in use by another MUCA server"
        )
        self.listener = listener
        return sender

    async def test_lock_file_deleted(self) -> None:
        sender = await self.second_is_refused("-spool.lock")
        # The first one still chats, with its own ids.
        sender.send_json(send("two", [], "sender@hku.hk"))
        await until(lambda: texts(self.listener) == ["one", "two"], WAIT, "two")
        ids = [o["ID"] for o in self.listener.objects if o.get("CMD") == "MSG"]
        self.assertEqual(ids, [1, 2])

    async def test_every_file_deleted(self) -> None:
        sender = await self.second_is_refused("*")
        # The first one refuses messages (its database is gone).
        sender.send_json(send("two", [], "sender@hku.hk"))
        await until(lambda: refusals(sender) == 1, WAIT, "a refusal")
        self.assertEqual(texts(self.listener), ["one"])


class ReadOnlyTests(TestCase):
    """``--db`` on a read-only file system: one line that says so."""

    async def test_a_read_only_file_system_is_one_line_on_stderr(self) -> None:
        mountpoint = loop_mount(self, read_only=True)
        line = await refused_start(self, "--db", os.path.join(mountpoint, "muca.db"))
        self.assertEqual(
            line,
            f"muca: cannot create muca.db in {mountpoint}: the file system is"
            " read-only",
        )
