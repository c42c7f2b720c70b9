"""Moderation on real ``twistd -n muca --auth db`` servers, on SQLite and on
a real PostgreSQL, through raw TCP clients: every action by an allowed and
a not-allowed user, the codes and the time left, the ``NOTICE`` text, an
original (no-capability) muted client's messages not delivered, kicks and
bans in a room and off the server, slow mode, moderators named by the owner
and by ``muca-admin``, the audit log, and bans and mutes kept across a
restart (a timed one ending by itself)."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from tests.support import OKAY, OriginalClient, RawClient, connect, join
from tests.support.accounts import AccountsCase, PostgresAccounts, SQLiteAccounts

SECRET = "correct horse battery"
ANN = ("Ann", "ann@hku.hk")
BOB = ("Bob", "bob@hku.hk")
CID = ("Cid", "cid@hku.hk")
ROOT = ("Root", "root@hku.hk")


async def seek(
    client: RawClient, cmd: str, limit: int = 30, skip: tuple[str, ...] = ()
) -> Any:
    """The next object whose ``CMD`` is ``cmd``, past rosters and listings
    (anything else on the way fails the test)."""
    for _ in range(limit):
        obj = await client.next_object()
        if obj["CMD"] == cmd:
            return obj
        if obj["CMD"] not in ("LIST", "PRESENCE", "ROOMS", "ENTERED", "NOTICE", *skip):
            raise AssertionError(f"waiting for {cmd}, got {obj}")
    raise AssertionError(f"no {cmd} in {limit} objects")


def notice(text: str, room: str = "maths") -> dict[str, Any]:
    return {"CMD": "NOTICE", "ROOM": room, "TEXT": text}


class ModerationCase(AccountsCase):
    """Accounts and moderation clients."""

    async def accounts(self) -> None:
        for uid in (ANN[1], BOB[1], CID[1]):
            await self.admin("user", "add", uid, stdin=SECRET)
        await self.admin("user", "add", ROOT[1], "--admin", stdin=SECRET)

    async def member(
        self, port: int, who: tuple[str, str], room: str | None = "maths"
    ) -> RawClient:
        """A moderation and rooms client joined, in ``room`` (made by the first)."""
        client = await self.client(port)
        client.send_json(join(*who, PASS=SECRET, V=2, CAPS=["rooms", "moderation"]))
        ack = await client.next_object()
        self.assertEqual((ack["CMD"], ack["TYPE"]), ("ACK", "OKAY"))
        if room is not None:
            client.send_json({"CMD": "ENTER", "ROOM": room})
            await seek(client, "ENTERED")
        return client


class ModerationBehaviour(ModerationCase):
    """Mixed into one TestCase per database."""

    async def test_mute_unmute_by_the_owner_not_by_a_member(self) -> None:
        await self.accounts()
        server = await self.server()
        ann = await self.member(server.port, ANN)
        bob = await self.member(server.port, BOB)
        cid = await self.member(server.port, CID)
        cid.send_json({"CMD": "MUTE", "ROOM": "maths", "UID": BOB[1], "FOR": 600})
        refused = await seek(cid, "ERROR")
        self.assertEqual(
            (refused["CODE"], refused["REF"]), ("NOT_ALLOWED", "MUTE"), refused
        )
        ann.send_json(
            {
                "CMD": "MUTE",
                "ROOM": "maths",
                "UID": BOB[1],
                "FOR": 600,
                "REASON": "spam",
            }
        )
        said = notice("Ann muted Bob for 10 minutes: spam")
        for client in (ann, bob, cid):
            self.assertEqual(await seek(client, "NOTICE"), said)
        bob.send_json(
            {"CMD": "SEND", "MSG": "hi", "TO": [], "FROM": BOB[1], "ROOM": "maths"}
        )
        self.assertEqual(
            await seek(bob, "ERROR"),
            {
                "CMD": "ERROR",
                "CODE": "MUTED",
                "REASON": "you are muted in the room 'maths' for 600 more seconds:"
                " not delivered",
                "REF": "SEND",
            },
        )
        ann.send_json({"CMD": "UNMUTE", "ROOM": "maths", "UID": BOB[1]})
        for client in (ann, bob, cid):
            self.assertEqual(await seek(client, "NOTICE"), notice("Ann unmuted Bob"))
        bob.send_json(
            {"CMD": "SEND", "MSG": "back", "TO": [], "FROM": BOB[1], "ROOM": "maths"}
        )
        got = await seek(cid, "MSG")
        self.assertEqual((got["MSG"], got["FROM"]), ("back", BOB[1]))
        log = await self.admin("audit")
        self.assertIn(
            "ann@hku.hk\tmute\tbob@hku.hk\troom maths for 10 minutes: spam", log
        )
        self.assertIn("ann@hku.hk\tunmute\tbob@hku.hk\troom maths", log)

    async def test_an_original_client_muted_server_wide_delivers_nothing(self) -> None:
        await self.accounts()
        server = await self.server()
        root = await self.member(server.port, ROOT, room=None)
        old = await connect(self, server.port, OriginalClient)
        old.send_json(join(*BOB, PASS=SECRET))
        self.assertEqual(await old.next_object(), OKAY)
        ann = await self.member(server.port, ANN, room=None)
        ann.send_json({"CMD": "MUTE", "UID": BOB[1], "FOR": None})
        refused = await seek(ann, "ERROR")
        self.assertEqual(refused["CODE"], "NOT_ALLOWED")
        root.send_json({"CMD": "MUTE", "UID": BOB[1], "FOR": None})
        self.assertEqual(
            await seek(root, "NOTICE"), notice("Root muted Bob for ever", "general")
        )
        old.send_json({"CMD": "SEND", "MSG": "spam", "TO": [], "FROM": BOB[1]})
        error = await seek(old, "ERROR")
        self.assertEqual(
            (error["CODE"], error["REASON"]),
            ("MUTED", "you are muted here for ever: not delivered"),
        )
        # Without the capability the commands are unknown.
        old.send_json({"CMD": "UNMUTE", "UID": BOB[1]})
        error = await seek(old, "ERROR")
        self.assertEqual(
            (error["CODE"], error["REASON"]),
            ("BAD_COMMAND", "unknown command 'UNMUTE'"),
        )
        root.send_json({"CMD": "UNMUTE", "UID": BOB[1]})
        self.assertEqual(
            await seek(root, "NOTICE"), notice("Root unmuted Bob", "general")
        )
        old.send_json({"CMD": "SEND", "MSG": "sorry", "TO": [], "FROM": BOB[1]})
        # The first message Ann gets is the one sent after the unmute.
        got = await seek(ann, "MSG")
        self.assertEqual((got["MSG"], got["FROM"]), ("sorry", BOB[1]))

    async def test_kick_from_a_room_and_off_the_server(self) -> None:
        await self.accounts()
        server = await self.server()
        ann = await self.member(server.port, ANN)
        bob = await self.member(server.port, BOB)
        bob.send_json({"CMD": "KICK", "ROOM": "maths", "UID": ANN[1]})
        self.assertEqual((await seek(bob, "ERROR"))["CODE"], "NOT_ALLOWED")
        ann.send_json({"CMD": "KICK", "ROOM": "maths", "UID": BOB[1], "REASON": "rude"})
        self.assertEqual(await seek(bob, "NOTICE"), notice("Ann kicked Bob: rude"))
        bob.send_json(
            {"CMD": "SEND", "MSG": "x", "TO": [], "FROM": BOB[1], "ROOM": "maths"}
        )
        self.assertEqual((await seek(bob, "ERROR"))["CODE"], "NOT_IN_ROOM")
        ann.send_json({"CMD": "KICK", "UID": BOB[1]})
        self.assertEqual((await seek(ann, "ERROR"))["CODE"], "NOT_ALLOWED")
        root = await self.member(server.port, ROOT, room=None)
        old = await connect(self, server.port, OriginalClient)
        old.send_json(join(*CID, PASS=SECRET))
        self.assertEqual(await old.next_object(), OKAY)
        root.send_json({"CMD": "KICK", "UID": CID[1], "REASON": "bye"})
        self.assertEqual(
            await seek(old, "KICKED"),
            {"CMD": "KICKED", "BY": ROOT[1], "REASON": "bye"},
        )
        await old.closed()

    async def test_bans_in_a_room_and_on_the_server(self) -> None:
        await self.accounts()
        server = await self.server()
        ann = await self.member(server.port, ANN)
        bob = await self.member(server.port, BOB)
        ann.send_json({"CMD": "BAN", "ROOM": "maths", "UID": BOB[1], "FOR": 3600})
        said = notice("Ann banned Bob for 1 hour")
        self.assertEqual(await seek(bob, "NOTICE"), said)
        self.assertEqual(await seek(ann, "NOTICE"), said)
        bob.send_json({"CMD": "ENTER", "ROOM": "maths"})
        error = await seek(bob, "ERROR")
        self.assertEqual(
            (error["CODE"], error["REASON"]),
            ("BANNED", "you are banned from the room 'maths' for 3600 more seconds"),
        )
        ann.send_json({"CMD": "UNBAN", "ROOM": "maths", "UID": BOB[1]})
        self.assertEqual(await seek(ann, "NOTICE"), notice("Ann unbanned Bob"))
        bob.send_json({"CMD": "ENTER", "ROOM": "maths"})
        self.assertEqual((await seek(bob, "ENTERED"))["ROOM"], "maths")
        root = await self.member(server.port, ROOT, room=None)
        ann.send_json({"CMD": "BAN", "UID": BOB[1], "FOR": 60})
        self.assertEqual((await seek(ann, "ERROR"))["CODE"], "NOT_ALLOWED")
        root.send_json({"CMD": "BAN", "UID": BOB[1], "FOR": 60})
        error = await seek(bob, "ERROR")
        self.assertEqual(
            (error["CODE"], error["REASON"]), ("BANNED", "Root banned Bob for 1 minute")
        )
        await bob.closed()
        again = await self.client(server.port)
        again.send_json(join(*BOB, PASS=SECRET))
        refused = await again.next_object()
        self.assertEqual(
            (refused["CMD"], refused["TYPE"], refused["CODE"]),
            ("ACK", "FAIL", "BANNED"),
        )
        self.assertRegex(
            refused["REASON"],
            r"^you are banned from this server for (60|59) more seconds$",
        )

    async def test_slow_mode_and_moderators(self) -> None:
        await self.accounts()
        server = await self.server()
        ann = await self.member(server.port, ANN)
        bob = await self.member(server.port, BOB)
        cid = await self.member(server.port, CID)
        bob.send_json({"CMD": "MODERATOR", "ROOM": "maths", "UID": CID[1]})
        self.assertEqual((await seek(bob, "ERROR"))["CODE"], "NOT_ALLOWED")
        ann.send_json({"CMD": "MODERATOR", "ROOM": "maths", "UID": CID[1]})
        self.assertEqual(await seek(cid, "NOTICE"), notice("Ann made Cid a moderator"))
        cid.send_json({"CMD": "ROOMSET", "ROOM": "maths", "SLOW": 30})
        # Its answer comes after the ROOMSET's been done.
        cid.send_json({"CMD": "MUTE", "ROOM": "maths", "UID": ANN[1]})
        self.assertEqual((await seek(cid, "ERROR"))["CODE"], "NOT_ALLOWED")
        bob.send_json(
            {"CMD": "SEND", "MSG": "one", "TO": [], "FROM": BOB[1], "ROOM": "maths"}
        )
        self.assertEqual((await seek(ann, "MSG"))["MSG"], "one")
        bob.send_json(
            {"CMD": "SEND", "MSG": "two", "TO": [], "FROM": BOB[1], "ROOM": "maths"}
        )
        error = await seek(bob, "ERROR", skip=("MSG",))
        self.assertEqual(error["CODE"], "SLOW_MODE")
        self.assertRegex(
            error["REASON"],
            r"^slow mode in the room 'maths': one message per 30 seconds;"
            r" wait (30|29) more seconds: not delivered$",
        )
        for text in ("a", "b"):  # a moderator is exempt
            cid.send_json(
                {"CMD": "SEND", "MSG": text, "TO": [], "FROM": CID[1], "ROOM": "maths"}
            )
            self.assertEqual((await seek(ann, "MSG"))["MSG"], text)
        self.assertEqual(
            await self.admin("room", "moderator", "maths", BOB[1]),
            "bob@hku.hk is a moderator of maths\n",
        )
        # The running server reads it within seconds: Bob may mute Cid then.
        for _ in range(40):
            bob.send_json({"CMD": "MUTE", "ROOM": "maths", "UID": CID[1], "FOR": 90})
            obj = await bob.next_object()
            while obj["CMD"] != "ERROR" and not (
                obj["CMD"] == "NOTICE" and obj["TEXT"].startswith("Bob")
            ):
                obj = await bob.next_object()
            if obj["CMD"] == "NOTICE":
                break
            self.assertEqual(obj["CODE"], "NOT_ALLOWED", obj)
            await task.deferLater(reactor, 0.25, lambda: None)
        self.assertEqual(obj, notice("Bob muted Cid for 90 seconds"))
        self.assertIn(
            "room moderator\tbob@hku.hk\troom maths", await self.admin("audit")
        )


class DeleteBehaviour(ModerationCase):
    """``DELETE`` by the author and by a room's owner, not by another."""

    async def test_delete_reaches_the_room_and_leaves_history_and_search(
        self,
    ) -> None:
        await self.accounts()
        server = await self.server()
        ann = await self.member(server.port, ANN)
        bob = await self.member(server.port, BOB)
        cid = await self.member(server.port, CID)
        for text in ("the secret plan", "lunch at noon", "secret meeting"):
            bob.send_json(
                {"CMD": "SEND", "MSG": text, "TO": [], "FROM": BOB[1], "ROOM": "maths"}
            )
        first, second, third = [await seek(cid, "MSG") for _ in range(3)]
        cid.send_json({"CMD": "DELETE", "ID": first["ID"]})
        error = await seek(cid, "ERROR")
        self.assertEqual((error["CODE"], error["REF"]), ("NOT_ALLOWED", "DELETE"))
        ann.send_json({"CMD": "DELETE", "ID": first["ID"], "REASON": "leak"})
        bob.send_json({"CMD": "DELETE", "ID": second["ID"]})  # its author
        for client in (ann, bob, cid):
            got = [await seek(client, "DELETED", skip=("MSG",)) for _ in range(2)]
            self.assertEqual(
                sorted(d["ID"] for d in got), [first["ID"], second["ID"]], client
            )
        cid.send_json({"CMD": "SEARCH", "Q": "secret"})
        self.assertEqual((await seek(cid, "MSG"))["MSG"], "secret meeting")
        self.assertEqual((await seek(cid, "SEARCH"))["MORE"], False)
        cid.send_json({"CMD": "DELETE", "ID": 999})
        error = await seek(cid, "ERROR")
        self.assertEqual(
            (error["CODE"], error["REASON"]),
            ("NO_SUCH_MESSAGE", "there is no message 999"),
        )
        cid.send_json({"CMD": "HISTORY", "ROOM": "maths", "BEFORE": third["ID"] + 1})
        kept = [await seek(cid, "MSG") for _ in range(3)]
        self.assertEqual([m["MSG"] for m in kept], ["", "", "secret meeting"])
        log = await self.admin("audit")
        self.assertIn(
            f"ann@hku.hk\tdelete\tbob@hku.hk\tmessage {first['ID']} (maths): leak", log
        )


class ReportBehaviour(ModerationCase):
    """``REPORT`` reaching the room's owner at once, an admin at its next
    ``JOIN`` (kept in the database till then)."""

    async def test_a_report_reaches_the_owner_now_and_an_admin_later(self) -> None:
        await self.accounts()
        server = await self.server()
        ann = await self.member(server.port, ANN)
        bob = await self.member(server.port, BOB)
        cid = await self.member(server.port, CID)
        bob.send_json(
            {
                "CMD": "SEND",
                "MSG": "rude words",
                "TO": [],
                "FROM": BOB[1],
                "ROOM": "maths",
            }
        )
        sent = await seek(cid, "MSG")
        cid.send_json({"CMD": "REPORT", "ID": 999})
        error = await seek(cid, "ERROR")
        self.assertEqual((error["CODE"], error["REF"]), ("NO_SUCH_MESSAGE", "REPORT"))
        cid.send_json({"CMD": "REPORT", "ID": sent["ID"], "REASON": "insults"})
        self.assertEqual(
            await seek(cid, "NOTICE"),
            notice(f"your report of message {sent['ID']} went to the moderators"),
        )
        report = await seek(ann, "REPORT", skip=("MSG",))
        expected = {
            "CMD": "REPORT",
            "ID": sent["ID"],
            "ROOM": "maths",
            "AUTHOR": BOB[1],
            "TEXT": "rude words",
            "BY": CID[1],
            "REASON": "insults",
        }
        self.assertEqual({k: v for k, v in report.items() if k != "TS"}, expected)
        root = await self.client(server.port)
        root.send_json(join(*ROOT, PASS=SECRET, V=2, CAPS=["rooms", "moderation"]))
        self.assertEqual((await root.next_object())["TYPE"], "OKAY")
        later = await seek(root, "REPORT")
        self.assertEqual({k: v for k, v in later.items() if k != "TS"}, expected)
        self.assertEqual(later["TS"], report["TS"])
        # Delivered: not again at the next JOIN.
        root.transport.loseConnection()
        await root.closed()
        again = await self.member(server.port, ROOT, room="maths")
        again.send_json({"CMD": "REPORT", "ID": 999})
        self.assertEqual((await seek(again, "ERROR"))["CODE"], "NO_SUCH_MESSAGE")


class TimedBehaviour(ModerationCase):
    """Across a real restart: a timed ban ends by itself, a mute stays."""

    async def test_bans_and_mutes_are_kept_across_a_restart(self) -> None:
        for uid in (ANN[1], BOB[1]):
            await self.admin("user", "add", uid, stdin=SECRET)
        server = await self.server()
        ann = await self.member(server.port, ANN)
        ann.send_json({"CMD": "BAN", "ROOM": "maths", "UID": BOB[1], "FOR": 4})
        ann.send_json({"CMD": "MUTE", "ROOM": "maths", "UID": BOB[1], "FOR": None})
        await seek(ann, "NOTICE")
        await seek(ann, "NOTICE")
        await task.deferLater(reactor, 0.3, lambda: None)
        server.terminate()
        await server.process.ended()
        server = await self.server()
        bob = await self.member(server.port, BOB, room=None)
        bob.send_json({"CMD": "ENTER", "ROOM": "maths"})
        error = await seek(bob, "ERROR")
        self.assertEqual(error["CODE"], "BANNED")
        self.assertRegex(error["REASON"], r"for [1-4] more seconds$")
        # The ban ends by itself: Bob's ENTER is refused BANNED until then
        # (every half second, for at most 20 s), then he is in.
        for _ in range(40):
            await task.deferLater(reactor, 0.5, lambda: None)
            bob.send_json({"CMD": "ENTER", "ROOM": "maths"})
            answer = await bob.next_object()
            while answer["CMD"] in ("LIST", "PRESENCE", "ROOMS", "NOTICE"):
                answer = await bob.next_object()
            if answer["CMD"] == "ENTERED":
                break
            self.assertEqual(answer["CODE"], "BANNED")
        else:
            raise AssertionError("the timed ban did not end")
        bob.send_json(
            {"CMD": "SEND", "MSG": "x", "TO": [], "FROM": BOB[1], "ROOM": "maths"}
        )
        error = await seek(bob, "ERROR")
        self.assertEqual(
            (error["CODE"], error["REASON"]),
            ("MUTED", "you are muted in the room 'maths' for ever: not delivered"),
        )


class SQLiteModeration(SQLiteAccounts, ModerationBehaviour, TestCase):
    pass


class PostgresModeration(PostgresAccounts, ModerationBehaviour, TestCase):
    pass


class SQLiteTimed(SQLiteAccounts, TimedBehaviour, TestCase):
    pass


class PostgresTimed(PostgresAccounts, TimedBehaviour, TestCase):
    pass


class SQLiteDelete(SQLiteAccounts, DeleteBehaviour, TestCase):
    pass


class PostgresDelete(PostgresAccounts, DeleteBehaviour, TestCase):
    pass


class SQLiteReport(SQLiteAccounts, ReportBehaviour, TestCase):
    pass


class PostgresReport(PostgresAccounts, ReportBehaviour, TestCase):
    pass
