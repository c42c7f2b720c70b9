"""``muca-admin`` run as a subprocess on SQLite and on a real PostgreSQL:
every verb, what it prints, what it keeps (the audit log), and every
mistake as one line on stderr with exit status 2."""

from __future__ import annotations

import os
import re
import sqlite3

from twisted.trial.unittest import TestCase

from muca.store.base import SCHEMA_VERSION
from tests.support import OKAY
from tests.support.accounts import (
    AccountsCase,
    PostgresAccounts,
    SQLiteAccounts,
    run_admin,
    run_admin_on_terminal,
)
from tests.support.twistd import fresh_directory

SECRET = "correct horse battery"
WHEN = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
ACTOR = r"muca-admin:\S+"


class AdminBehaviour(AccountsCase):
    """Mixed into one TestCase per database."""

    async def mistake(self, *args: str, stdin: str = "") -> str:
        """``muca-admin`` that must fail: its one line on stderr."""
        code, out, err = await run_admin(self.db, *args, stdin=stdin)
        self.assertEqual((code, out), (2, ""), err)
        self.assertNotIn("Traceback", err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        return lines[0]

    async def test_user_verbs_and_the_audit_log(self) -> None:
        self.assertEqual(
            await self.admin(
                "user", "add", "ann@hku.hk", "--admin", stdin=SECRET + "\n"
            ),
            "added account ann@hku.hk (admin)\n",
        )
        self.assertEqual(
            await self.admin("user", "add", "bob@hku.hk", stdin=SECRET),
            "added account bob@hku.hk (member)\n",
        )
        listed = (await self.admin("user", "list")).splitlines()
        self.assertEqual(len(listed), 2)
        self.assertRegex(listed[0], rf"^ann@hku\.hk\tadmin\tenabled\tcreated {WHEN}$")
        self.assertRegex(listed[1], rf"^bob@hku\.hk\tmember\tenabled\tcreated {WHEN}$")
        self.assertEqual(
            await self.admin("user", "disable", "bob@hku.hk"), "disabled bob@hku.hk\n"
        )
        self.assertEqual(
            await self.admin("user", "role", "bob@hku.hk", "admin"),
            "bob@hku.hk is admin\n",
        )
        self.assertIn("bob@hku.hk\tadmin\tdisabled", await self.admin("user", "list"))
        self.assertEqual(
            await self.admin("user", "enable", "bob@hku.hk"), "enabled bob@hku.hk\n"
        )
        self.assertEqual(
            await self.admin(
                "user", "password", "bob@hku.hk", stdin="another secret\n"
            ),
            "new password for bob@hku.hk\n",
        )
        audit = (await self.admin("audit")).splitlines()
        actions = [
            ("user add", "ann@hku.hk", "admin"),
            ("user add", "bob@hku.hk", "member"),
            ("user disable", "bob@hku.hk", None),
            ("user role", "bob@hku.hk", "admin"),
            ("user enable", "bob@hku.hk", None),
            ("user password", "bob@hku.hk", None),
        ]
        self.assertEqual(len(audit), len(actions), audit)
        for line, (action, target, detail) in zip(audit, actions, strict=True):
            tail = f"\t{detail}" if detail else ""
            self.assertRegex(
                line, rf"^{WHEN}\t{ACTOR}\t{action}\t{re.escape(target)}{tail}$"
            )
        # Nothing of either password anywhere in what it prints.
        self.assertNotIn(SECRET, "\n".join(audit + listed))
        self.assertEqual(await self.admin("audit", "--since", "2999-01-01"), "")
        self.assertEqual(
            len(
                (await self.admin("audit", "--since", "2000-01-01T00:00")).splitlines()
            ),
            6,
        )

    async def test_on_a_terminal_the_password_is_asked_twice(self) -> None:
        code, shown = await run_admin_on_terminal(
            self.db, "user", "add", "ann@hku.hk", answers=[SECRET, SECRET]
        )
        self.assertEqual(
            (code, shown),
            (
                0,
                "New password for ann@hku.hk: \nThe same password again: \n"
                "added account ann@hku.hk (member)\n",
            ),
        )
        code, shown = await run_admin_on_terminal(
            self.db, "user", "password", "ann@hku.hk", answers=[SECRET, "other one!"]
        )
        self.assertEqual(code, 2)
        self.assertTrue(
            shown.endswith(
                "The same password again: \n"
                "muca-admin: the two passwords differ; nothing changed\n"
            ),
            shown,
        )
        self.assertNotIn(SECRET, shown)

    async def test_invite_verbs(self) -> None:
        first = (await self.admin("invite", "create")).strip()
        second = (
            await self.admin("invite", "create", "--uses", "30", "--expires", "never")
        ).strip()
        third = (await self.admin("invite", "create", "--expires", "2w")).strip()
        self.assertEqual(len({first, second, third}), 3)
        self.assertEqual(
            await self.admin("invite", "revoke", third), f"revoked {third}\n"
        )
        listed = (await self.admin("invite", "list")).splitlines()
        self.assertEqual(len(listed), 3)
        by_code = {line.split("\t")[0]: line for line in listed}
        self.assertRegex(
            by_code[first], rf"\tusable\t1 uses left\texpires {WHEN}\tby {ACTOR}$"
        )
        self.assertRegex(
            by_code[second], rf"\tusable\t30 uses left\texpires never\tby {ACTOR}$"
        )
        self.assertRegex(by_code[third], r"\trevoked\t1 uses left\t")
        audit = await self.admin("audit")
        self.assertIn(f"invite create\t{second}\t30 uses, expires never", audit)
        self.assertIn(f"invite revoke\t{third}", audit)

    async def test_import_users_hashes_todays_password_file(self) -> None:
        folder = fresh_directory(self)
        users = os.path.join(folder, "users.txt")
        with open(users, "w", encoding="utf-8") as file:
            file.write("ann@hku.hk:anns-secret\n\nzoé@hku.hk:zoés-secret\n")
        await self.admin("user", "add", "ann@hku.hk", stdin=SECRET)
        self.assertEqual(
            await self.admin("import-users", users),
            "imported 1 accounts; kept the 1 that had one: ann@hku.hk\n",
        )
        self.assertIn("zoé@hku.hk\tmember\tenabled", await self.admin("user", "list"))
        server = await self.server()
        # The imported password logs in; the kept account keeps its own.
        self.assertEqual(
            await self.login(server.port, "zoé@hku.hk", "zoés-secret"), OKAY
        )
        self.assertEqual(await self.login(server.port, "ann@hku.hk", SECRET), OKAY)
        self.assertIn("import-users\t1 from users.txt", await self.admin("audit"))
        with open(users, "a", encoding="utf-8") as file:
            file.write("no colon here\n")
        self.assertEqual(
            await self.mistake("import-users", users),
            f"muca-admin: {users}: line 4 has no ':' between user id and password",
        )
        missing = os.path.join(folder, "none.txt")
        self.assertEqual(
            await self.mistake("import-users", missing),
            f"muca-admin: {missing}: No such file or directory",
        )

    async def test_every_mistake_is_one_line_and_exit_status_2(self) -> None:
        await self.admin("user", "add", "ann@hku.hk", stdin=SECRET)
        for args, stdin, line in (
            (
                ("user", "add", "ann@hku.hk"),
                SECRET,
                "'ann@hku.hk' has an account already",
            ),
            (("user", "add", "bob@hku.hk"), "", "no password on stdin (one line)"),
            (
                ("user", "add", "bob@hku.hk"),
                "short\n",
                "weak password: too short: a password needs at least 8 characters"
                " (at most 1024) and must not be the user id",
            ),
            (
                ("user", "add", "bob@hku.hk"),
                "bob@hku.hk\n",
                "weak password: it is the user id: a password needs at least 8"
                " characters (at most 1024) and must not be the user id",
            ),
            (
                ("user", "add", " bob"),
                SECRET,
                "the user id must not start or end with a space",
            ),
            (("user", "disable", "bob@hku.hk"), "", "no account 'bob@hku.hk'"),
            (("user", "enable", "bob@hku.hk"), "", "no account 'bob@hku.hk'"),
            (("user", "password", "bob@hku.hk"), SECRET, "no account 'bob@hku.hk'"),
            (("user", "role", "bob@hku.hk", "member"), "", "no account 'bob@hku.hk'"),
            (("invite", "revoke", "nope"), "", "no invitation 'nope'"),
            (
                ("invite", "create", "--expires", "3x"),
                "",
                "--expires: '3x' is no duration (30m, 12h, 7d, 2w)",
            ),
            (("invite", "create", "--uses", "0"), "", "--uses: at least 1"),
            (
                ("audit", "--since", "yesterday"),
                "",
                "--since: 'yesterday' is no date (2026-12-08 or 2026-12-08T09:30)",
            ),
        ):
            self.assertEqual(
                await self.mistake(*args, stdin=stdin), f"muca-admin: {line}", args
            )
        for args, start in (
            (
                ("user", "frob"),
                "muca-admin user: argument ACTION: invalid choice: 'frob'",
            ),
            (
                ("user", "role", "ann@hku.hk", "boss"),
                "muca-admin user role: argument role",
            ),
            (("invite",), "muca-admin invite: the following arguments are required"),
            ((), "muca-admin: the following arguments are required: VERB"),
            (
                ("user", "add"),
                "muca-admin user add: the following arguments are required",
            ),
        ):
            self.assertTrue((await self.mistake(*args)).startswith(start), args)
        # Nothing changed by any of them.
        self.assertEqual(len((await self.admin("user", "list")).splitlines()), 1)

    async def test_help_for_each_verb(self) -> None:
        for args, words in (
            ((), "user"),
            (("user",), "disable"),
            (("user", "add"), "--admin"),
            (("user", "role"), "admin,member"),
            (("invite", "create"), "--expires"),
            (("audit",), "--since"),
            (("import-users",), "uid:password"),
        ):
            code, out, err = await run_admin(self.db, *args, "--help")
            self.assertEqual((code, err), (0, ""), args)
            self.assertIn("usage: muca-admin", out)
            self.assertIn(words, out, args)


class SQLiteAdminTests(SQLiteAccounts, AdminBehaviour, TestCase):
    """On an SQLite file."""

    async def test_a_reading_verb_makes_no_database(self) -> None:
        line = await self.mistake("user", "list")
        self.assertEqual(
            line,
            f"muca-admin: --db {self.db}: no such database (give the server's --db)",
        )
        self.assertFalse(os.path.exists(self.db))

    async def test_a_file_that_is_no_muca_database_is_left_alone(self) -> None:
        with sqlite3.connect(self.db) as db:
            db.execute("CREATE TABLE notes (x TEXT)")
        db.close()
        line = await self.mistake("user", "add", "ann@hku.hk", stdin=SECRET)
        self.assertTrue(line.startswith("muca-admin: --db: "), line)
        self.assertIn("not a MUCA database", line)
        with sqlite3.connect(self.db) as db:
            tables = db.execute("SELECT name FROM sqlite_master").fetchall()
        db.close()
        self.assertEqual(tables, [("notes",)])

    async def test_a_new_file_gets_the_schema_the_server_reads(self) -> None:
        await self.admin("user", "add", "ann@hku.hk", stdin=SECRET)
        with sqlite3.connect(self.db) as db:
            (version,) = db.execute(
                "SELECT value FROM muca_meta WHERE key = 'schema_version'"
            ).fetchone()
        db.close()
        self.assertEqual(version, str(SCHEMA_VERSION))


class PostgresAdminTests(PostgresAccounts, AdminBehaviour, TestCase):
    """On a real PostgreSQL."""

    async def test_an_unreachable_database_is_one_line(self) -> None:
        code, out, err = await run_admin(
            "host=127.0.0.1 port=1 dbname=x connect_timeout=2", "user", "list"
        )
        self.assertEqual((code, out), (2, ""))
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertTrue(err.startswith("muca-admin: --db: PostgreSQL "), err)
