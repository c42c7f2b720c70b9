"""muca.service.tap: the limits' options, their defaults, and their documentation."""

from __future__ import annotations

import re
import resource
import subprocess
from pathlib import Path

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase

import muca
from muca.service import tap
from tests.support.twistd import TWISTD, fresh_directory, start_twistd

README = Path(__file__).resolve().parent.parent.parent / "README.md"


def service_for(*args: str) -> tap.ChatService:
    """The service that ``twistd muca ARGS`` builds (not started: its node,
    built at start, takes ``config``)."""
    options = tap.Options()
    options.parseOptions(list(args))
    return tap.makeService(options)


class LimitOptionTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        service = service_for()
        config = service.config
        self.assertEqual(config.max_outbound, 4 * 1024 * 1024)
        self.assertEqual(config.join_timeout, 30)
        self.assertEqual((config.rate, config.burst), (20, 50))
        descriptors = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.assertEqual(config.max_connections, descriptors - 64)
        self.assertEqual(config.max_per_address, 100)
        self.assertTrue(config.exempt_loopback)
        self.assertIsNone(config.capacity)
        self.assertIsNone(service.portal)

    def test_options_reach_the_node_config(self) -> None:
        config = service_for(
            "--max-outbound", "1000", "--join-timeout", "2.5", "--rate-limit", "5",
            "--rate-burst", "7", "--max-connections", "9", "--max-per-address", "3",
            "--max-members", "4",
        ).config  # fmt: skip
        self.assertEqual(config.max_outbound, 1000)
        self.assertEqual(config.join_timeout, 2.5)
        self.assertEqual((config.rate, config.burst), (5, 7))
        self.assertEqual(config.max_connections, 9)
        self.assertEqual(config.max_per_address, 3)
        self.assertFalse(config.exempt_loopback)
        self.assertEqual(config.capacity, 4)

    def test_zero_turns_a_limit_off(self) -> None:
        config = service_for(
            "--join-timeout", "0", "--rate-limit", "0", "--max-connections", "0",
            "--max-per-address", "0", "--max-members", "0",
        ).config  # fmt: skip
        self.assertIsNone(config.join_timeout)
        self.assertIsNone(config.rate)
        self.assertIsNone(config.max_connections)
        self.assertIsNone(config.max_per_address)
        self.assertIsNone(config.capacity)

    def test_the_default_room_and_who_creates_rooms_reach_the_config(self) -> None:
        config = service_for().config
        self.assertEqual(
            (config.default_room, config.create_rooms), ("general", "anyone")
        )
        config = service_for(
            "--default-room", "#Lobby", "--create-rooms", "nobody"
        ).config
        self.assertEqual(
            (config.default_room, config.create_rooms), ("lobby", "nobody")
        )

    def test_a_bad_room_name_or_creator_is_one_usage_line(self) -> None:
        for args, said in (
            (
                ["--default-room", "the lobby"],
                "--default-room: 'the lobby' is no room name",
            ),
            (["--default-room", "x" * 33], "--default-room: "),
            (
                ["--create-rooms", "maybe"],
                "--create-rooms: 'maybe' is not one of anyone, admins, nobody",
            ),
        ):
            with self.assertRaises(UsageError, msg=args) as caught:
                tap.Options().parseOptions(args)
            self.assertIn(said, str(caught.exception))

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


class CommandLineTests(SynchronousTestCase):
    """``twistd muca`` as run from a shell: mistakes are one line, no traceback."""

    def twistd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*TWISTD, "-n", "--pidfile=", "muca", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=fresh_directory(self),
        )

    def test_bad_ports_and_endpoints_are_one_line_naming_the_option(self) -> None:
        cases = {
            ("--port", "abc"): "--port: 'abc' is not a port number (0-65535)",
            ("--port", "-5"): "--port: '-5' is not a port number (0-65535)",
            ("--port", "99999"): "--port: '99999' is not a port number (0-65535)",
            ("--listen", "bogus:xyz"): "--listen: bogus:xyz: Unknown endpoint type",
            ("--listen", "tcp:notaport"): "--listen: 'notaport' is not a port number",
            ("--max-frame", "abc"): "--max-frame: 'abc' is not a positive whole",
        }
        for args, message in cases.items():
            ran = self.twistd(*args)
            self.assertNotEqual(ran.returncode, 0, args)
            output = ran.stdout + ran.stderr
            self.assertNotIn("Traceback", output, args)
            self.assertNotIn("listening", output, args)  # nothing listened
            errors = [line for line in output.splitlines() if message in line]
            self.assertEqual(len(errors), 1, output)
            # twistd's usage line, a pointer to --help, and the mistake.
            self.assertLessEqual(len(output.splitlines()), 3, output)

    def test_version_shows_mucas_version(self) -> None:
        ran = self.twistd("--version")
        self.assertEqual(ran.returncode, 0)
        self.assertIn(f"MUCA version {muca.__version__}", ran.stdout)

    def test_port_zero_is_accepted(self) -> None:
        options = tap.Options()
        options.parseOptions(["--port", "0"])
        self.assertEqual(options["listen"][0], "tcp:0:backlog=1024")


class ListeningLogTests(TestCase):
    async def test_the_port_the_system_gave_is_logged(self) -> None:
        server = await start_twistd(self, "--port", "0")
        lines = re.findall(r"muca: listening on ([^ \n]+)", server.process.output)
        self.assertEqual(len(lines), 2, server.process.output)
        self.assertIn(f"127.0.0.1:{server.port}", lines)
        other = next(line for line in lines if line != f"127.0.0.1:{server.port}")
        self.assertRegex(other, r"^0\.0\.0\.0:[1-9]\d*$")


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
            "web-host",
            "metrics-from",
        ]
        for name in names:
            self.assertIn(f"--{name}", usage)
            self.assertRegex(server_section, rf"(?m)^\| `--{re.escape(name)}\b", name)
