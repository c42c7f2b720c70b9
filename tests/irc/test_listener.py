"""``--irc DESC``: parsed like the other listeners' descriptions."""

from __future__ import annotations

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from muca.service.tap import Options


class IrcOptionTests(SynchronousTestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(["--db", "none", *args])
        return options

    def test_none_by_default(self) -> None:
        self.assertEqual(self.parse()["irc"], [])

    def test_repeatable_port_or_description(self) -> None:
        options = self.parse("--irc", "6667", "--irc", "tcp:6668:interface=127.0.0.1")
        self.assertEqual(
            options["irc"],
            ["tcp:6667:backlog=1024", "tcp:6668:interface=127.0.0.1:backlog=1024"],
        )

    def test_a_mistake_names_the_option(self) -> None:
        with self.assertRaises(usage.UsageError) as raised:
            self.parse("--irc", "99999")
        self.assertEqual(
            str(raised.exception), "--irc: '99999' is not a port number (0-65535)"
        )
        with self.assertRaises(usage.UsageError) as raised:
            self.parse("--irc", "nonsense:1")
        self.assertTrue(str(raised.exception).startswith("--irc: nonsense:1: "))
