"""``twistd muca --auth db`` and ``--register`` on the command line: a
mistake is twistd's usage line, a pointer to ``--help`` and one line naming
the option, exit status 1, before anything listens."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.support.twistd import spawn_twistd


class AccountOptionTests(TestCase):
    async def refused(self, *args: str) -> str:
        """The one line naming the mistake of ``twistd -n muca ARGS``."""
        process, _ = spawn_twistd(self, "--port", "0", "--web", "none", *args)
        (reason,) = await process.ended()
        self.assertEqual(reason.value.exitCode, 1)
        self.assertNotIn("Traceback", process.output)
        self.assertNotIn("listening", process.output)
        lines = process.output.splitlines()
        self.assertEqual(
            lines[:2],
            ["Usage: twistd [options]", 'Run "twistd muca --help" for the options.'],
        )
        self.assertEqual(len(lines), 3, process.output)
        return lines[2]

    async def test_auth_db_needs_a_database(self) -> None:
        line = await self.refused("--auth", "db", "--db", "none")
        self.assertTrue(
            line.endswith(
                ": --auth db keeps the accounts in the database: give --db a file"
                " or a postgresql:// URL, not none"
            ),
            line,
        )

    async def test_register_takes_open_invite_or_closed(self) -> None:
        line = await self.refused("--auth", "db", "--register", "everyone")
        self.assertTrue(
            line.endswith(
                ": --register: 'everyone' is not one of open, invite, closed"
            ),
            line,
        )
