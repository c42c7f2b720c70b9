"""REGISTER and PASSWORD on real ``twistd -n muca --auth db`` servers, on
SQLite and on a real PostgreSQL: open registration, by invitation (a good
code, one expired, used up or revoked), closed; weak passwords; logins with
the account; and no clear password in the database, the log or /metrics."""

from __future__ import annotations

import glob
import re

import psycopg
from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from tests.support import OKAY, join, roster
from tests.support.accounts import AccountsCase, PostgresAccounts, SQLiteAccounts
from tests.support.http import http_get

SECRET = "correct horse battery"
RULE = (
    "a password needs at least 8 characters (at most 1024) and must not be the user id"
)


def refusal(code: str, reason: str, ref: str = "REGISTER") -> dict[str, str]:
    return {"CMD": "ERROR", "CODE": code, "REASON": reason, "REF": ref}


AUTH_FAILED = {
    "CMD": "ACK",
    "TYPE": "FAIL",
    "CODE": "AUTH_FAILED",
    "REASON": "wrong or missing password",
}
BAD_INVITE = refusal(
    "BAD_INVITE", "this invitation code is unknown, used up, expired or revoked"
)


class RegistrationBehaviour(AccountsCase):
    """Mixed into one TestCase per database."""

    async def test_open_registration_makes_an_account_that_logs_in(self) -> None:
        server = await self.server("--register", "open")
        answer = await self.register(server.port, "ann@hku.hk", SECRET)
        self.assertEqual(answer, {"CMD": "REGISTERED", "UID": "ann@hku.hk"})
        ann = await self.client(server.port)
        ann.send_json(join("Ann", "ann@hku.hk", PASS=SECRET))
        self.assertEqual(
            await ann.next_objects(2), [OKAY, roster(("Ann", "ann@hku.hk"))]
        )
        self.assertEqual(
            await self.login(server.port, "ann@hku.hk", "not the password"),
            AUTH_FAILED,
        )
        # A user id without an account is refused the same way.
        self.assertEqual(
            await self.login(server.port, "bob@hku.hk", SECRET), AUTH_FAILED
        )
        # Taken: by the account made.
        self.assertEqual(
            await self.register(server.port, "ann@hku.hk", "another one!"),
            refusal("UID_TAKEN", "this user id has an account already"),
        )
        self.assertIn("account 'ann@hku.hk' registered", server.process.output)

    async def test_weak_passwords_are_refused_saying_what_is_needed(self) -> None:
        server = await self.server("--register", "open")
        for uid, password, why in (
            ("ann", "short", "too short"),
            ("ann@hku.hk", "ann@hku.hk", "it is the user id"),
            ("ann@hku.hk", "ANN@HKU.HK", "it is the user id"),
        ):
            self.assertEqual(
                await self.register(server.port, uid, password),
                refusal("WEAK_PASSWORD", f"{why}: {RULE}"),
            )
        self.assertEqual(await self.login(server.port, "ann", "short"), AUTH_FAILED)

    async def test_by_invitation_a_good_code_is_needed(self) -> None:
        server = await self.server()  # --register invite is the default
        self.assertEqual(
            await self.register(server.port, "ann@hku.hk", SECRET),
            refusal(
                "BAD_INVITE",
                "this server registers by invitation: REGISTER needs INVITE, a"
                " code from its admin",
            ),
        )
        self.assertEqual(
            await self.register(server.port, "ann@hku.hk", SECRET, INVITE="made-up"),
            BAD_INVITE,
        )
        code = (await self.admin("invite", "create", "--uses", "2")).strip()
        self.assertRegex(code, r"^[A-Za-z0-9_-]{22}$")
        for uid in ("ann@hku.hk", "bob@hku.hk"):
            self.assertEqual(
                await self.register(server.port, uid, SECRET, INVITE=code),
                {"CMD": "REGISTERED", "UID": uid},
            )
        # Used up after two.
        self.assertEqual(
            await self.register(server.port, "cat@hku.hk", SECRET, INVITE=code),
            BAD_INVITE,
        )
        listed = await self.admin("invite", "list")
        self.assertIn(f"{code}\tused up\t0 uses left", listed)
        self.assertEqual(await self.login(server.port, "bob@hku.hk", SECRET), OKAY)

    async def test_a_taken_user_id_does_not_use_up_the_invitation(self) -> None:
        server = await self.server()
        await self.admin("user", "add", "ann@hku.hk", stdin=SECRET + "\n")
        code = (await self.admin("invite", "create")).strip()
        self.assertEqual(
            await self.register(server.port, "ann@hku.hk", SECRET, INVITE=code),
            refusal("UID_TAKEN", "this user id has an account already"),
        )
        self.assertEqual(
            await self.register(server.port, "bob@hku.hk", SECRET, INVITE=code),
            {"CMD": "REGISTERED", "UID": "bob@hku.hk"},
        )

    async def test_a_revoked_or_expired_invitation_is_refused(self) -> None:
        server = await self.server()
        revoked = (await self.admin("invite", "create", "--uses", "5")).strip()
        self.assertEqual(
            await self.admin("invite", "revoke", revoked), f"revoked {revoked}\n"
        )
        self.assertEqual(
            await self.register(server.port, "ann@hku.hk", SECRET, INVITE=revoked),
            BAD_INVITE,
        )
        expiring = (await self.admin("invite", "create", "--expires", "1s")).strip()
        await task.deferLater(reactor, 1.1, lambda: None)
        self.assertEqual(
            await self.register(server.port, "ann@hku.hk", SECRET, INVITE=expiring),
            BAD_INVITE,
        )
        listed = await self.admin("invite", "list")
        self.assertIn(f"{revoked}\trevoked\t5 uses left", listed)
        self.assertIn(f"{expiring}\texpired\t1 uses left", listed)

    async def test_closed_registration(self) -> None:
        server = await self.server("--register", "closed")
        self.assertEqual(
            await self.register(server.port, "ann@hku.hk", SECRET),
            refusal(
                "REGISTRATION_CLOSED",
                "this server takes no new accounts: ask its admin for one",
            ),
        )
        await self.admin("user", "add", "ann@hku.hk", stdin=SECRET + "\n")
        self.assertEqual(await self.login(server.port, "ann@hku.hk", SECRET), OKAY)

    async def test_a_joined_user_changes_its_password(self) -> None:
        server = await self.server("--register", "open")
        await self.register(server.port, "ann@hku.hk", SECRET)
        ann = await self.client(server.port)
        ann.send_json(join("Ann", "ann@hku.hk", PASS=SECRET))
        await ann.next_objects(2)
        new = "a brand new secret"
        for old, password, answer in (
            (
                "wrong",
                new,
                refusal("AUTH_FAILED", "OLD is not your password", "PASSWORD"),
            ),
            (
                SECRET,
                "tiny",
                refusal("WEAK_PASSWORD", f"too short: {RULE}", "PASSWORD"),
            ),
            (SECRET, new, {"CMD": "PASSWORD", "CHANGED": True}),
        ):
            ann.send_json({"CMD": "PASSWORD", "OLD": old, "NEW": password})
            self.assertEqual(await ann.next_object(), answer)
        await ann.close()
        self.assertEqual(
            await self.login(server.port, "ann@hku.hk", SECRET), AUTH_FAILED
        )
        self.assertEqual(await self.login(server.port, "ann@hku.hk", new), OKAY)

    async def test_register_and_password_out_of_turn(self) -> None:
        server = await self.server("--register", "open")
        client = await self.client(server.port)
        client.send_json({"CMD": "PASSWORD", "OLD": SECRET, "NEW": SECRET + "!"})
        client.send_json({"CMD": "REGISTER", "UID": "ann@hku.hk"})
        client.send_json({"CMD": "REGISTER", "UID": "", "PASS": SECRET})
        self.assertEqual(
            await client.next_objects(3),
            [
                refusal("NOT_JOINED", "join with your password first", "PASSWORD"),
                refusal("BAD_COMMAND", "REGISTER needs PASS, a string"),
                refusal("BAD_COMMAND", "UID must not be empty"),
            ],
        )
        await self.register(server.port, "ann@hku.hk", SECRET)
        client.send_json(join("Ann", "ann@hku.hk", PASS=SECRET))
        await client.next_objects(2)
        client.send_json({"CMD": "REGISTER", "UID": "bob@hku.hk", "PASS": SECRET})
        self.assertEqual(
            await client.next_object(),
            refusal("ALREADY_JOINED", "REGISTER comes before JOIN"),
        )

    async def test_no_clear_password_in_the_database_the_log_or_metrics(self) -> None:
        server = await self.server(
            "--register", "open", "--web", "tcp:0:interface=127.0.0.1"
        )
        match = await server.process.wait_for(r"browser client on http://[^:]+:(\d+)/")
        web_port = int(match.group(1))
        secrets = [SECRET, "the second secret", "a wrong guess!"]
        await self.register(server.port, "ann@hku.hk", secrets[0])
        ann = await self.client(server.port)
        ann.send_json(join("Ann", "ann@hku.hk", PASS=secrets[0]))
        await ann.next_objects(2)
        ann.send_json({"CMD": "PASSWORD", "OLD": secrets[0], "NEW": secrets[1]})
        await ann.next_object()
        self.assertEqual(
            await self.login(server.port, "ann@hku.hk", secrets[2]), AUTH_FAILED
        )
        _, metrics = await http_get(web_port, "/metrics")
        self.assertIn(b"muca_", metrics)
        server.terminate()
        await server.process.ended()
        stored = self.stored_bytes()
        self.assertIn(b"$argon2id$v=19$m=65536,t=3,p=4$", stored)
        for secret in secrets:
            for where, text in (
                ("database", stored),
                ("log", server.process.output.encode()),
                ("metrics", metrics),
            ):
                self.assertNotIn(secret.encode(), text, where)
        self.assertNotIn("Traceback", server.process.output)

    def stored_bytes(self) -> bytes:
        """Everything the database holds, as bytes."""
        raise NotImplementedError


class SQLiteRegistrationTests(SQLiteAccounts, RegistrationBehaviour, TestCase):
    """On an SQLite file."""

    def stored_bytes(self) -> bytes:
        # The file, its write-ahead log and the spool beside it.
        data = b""
        for path in glob.glob(re.sub(r"muca\.db$", "*", self.db)):
            with open(path, "rb") as file:
                data += file.read()
        return data


class PostgresRegistrationTests(PostgresAccounts, RegistrationBehaviour, TestCase):
    """On a real PostgreSQL."""

    def stored_bytes(self) -> bytes:
        with psycopg.connect(self.db) as db:
            rows = db.execute("SELECT * FROM muca_accounts").fetchall()
            rows += db.execute("SELECT * FROM muca_audit").fetchall()
        return repr(rows).encode()
