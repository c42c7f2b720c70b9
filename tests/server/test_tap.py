"""muca.server.tap: the limits' options, their defaults, and their documentation."""

from __future__ import annotations

import re
import resource
from pathlib import Path

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from muca.server import tap

README = Path(__file__).resolve().parent.parent.parent / "README.md"


def factory_for(*args: str):
    """The ``ChatFactory`` that ``twistd muca ARGS`` builds."""
    options = tap.Options()
    options.parseOptions(list(args))
    return tap.makeService(options).factory


class LimitOptionTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        factory = factory_for()
        self.assertEqual(factory.max_outbound, 4 * 1024 * 1024)
        self.assertEqual(factory.join_timeout, 30)
        self.assertEqual((factory.rate, factory.burst), (20, 50))
        descriptors = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.assertEqual(factory.counter.max_total, descriptors - 64)
        self.assertEqual(factory.counter.max_per_address, 100)
        self.assertTrue(factory.counter.exempt_loopback)
        self.assertIsNone(factory.room.capacity)
        self.assertIsNone(factory.portal)

    def test_options_reach_the_factory(self) -> None:
        factory = factory_for(
            "--max-outbound", "1000", "--join-timeout", "2.5", "--rate-limit", "5",
            "--rate-burst", "7", "--max-connections", "9", "--max-per-address", "3",
            "--max-members", "4",
        )  # fmt: skip
        self.assertEqual(factory.max_outbound, 1000)
        self.assertEqual(factory.join_timeout, 2.5)
        self.assertEqual((factory.rate, factory.burst), (5, 7))
        self.assertEqual(factory.counter.max_total, 9)
        self.assertEqual(factory.counter.max_per_address, 3)
        self.assertFalse(factory.counter.exempt_loopback)
        self.assertEqual(factory.room.capacity, 4)

    def test_zero_turns_a_limit_off(self) -> None:
        factory = factory_for(
            "--join-timeout", "0", "--rate-limit", "0", "--max-connections", "0",
            "--max-per-address", "0", "--max-members", "0",
        )  # fmt: skip
        self.assertIsNone(factory.join_timeout)
        self.assertIsNone(factory.rate)
        self.assertIsNone(factory.counter.max_total)
        self.assertIsNone(factory.counter.max_per_address)
        self.assertIsNone(factory.room.capacity)

    def test_nonsense_values_are_usage_errors(self) -> None:
        for args in (
            ["--max-outbound", "0"],
            ["--max-outbound", "lots"],
            ["--rate-burst", "0"],
            ["--rate-limit", "-1"],
            ["--rate-limit", "nan"],
            ["--join-timeout", "inf"],
            ["--max-connections", "-5"],
            ["--max-per-address", "1.5"],
            ["--max-members", "x"],
        ):
            with self.assertRaises(UsageError, msg=args):
                tap.Options().parseOptions(args)


class DocumentationTests(SynchronousTestCase):
    def test_help_and_readme_document_every_option(self) -> None:
        usage = str(tap.Options())
        table = README.read_text(encoding="utf-8")
        server_section = table[
            table.index("## The server") : table.index("## The client")
        ]
        names = [row[0] for row in tap.Options.optParameters] + [
            "listen",
            "auth",
            "web",
            "web-origin",
        ]
        for name in names:
            self.assertIn(f"--{name}", usage)
            self.assertRegex(server_section, rf"(?m)^\| `--{re.escape(name)}\b", name)
