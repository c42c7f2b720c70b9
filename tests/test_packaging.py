"""The installed project and ``twistd muca`` as a user runs them.

These start real processes: a fresh virtualenv with the built project
installed, and ``twistd -n muca`` itself. Each is bounded in time; the whole
module takes a few seconds (most of it building the wheel).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import venv
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.error import ProcessTerminated
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.service import tap
from tests.support import OKAY, TIMEOUT, connect, join
from tests.support.twistd import (
    PROCESS_TIMEOUT,
    TWISTD,
    TwistdProcess,
    fresh_directory,
    process_pid,
)

PROJECT = Path(__file__).resolve().parent.parent
# What a source checkout holds that is not part of the project's build input.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".venv-test", ".tox", "build", "dist", "*.egg-info",
    "_trial_temp*", "__pycache__", ".pytest_cache", ".hypothesis", "dropin.cache",
    "artifacts",
)  # fmt: skip


def site_packages(prefix: Path) -> Path:
    """The site-packages directory of a virtualenv made by this Python."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return prefix / "lib" / version / "site-packages"


class InstallTests(SynchronousTestCase):
    def test_installed_project_ships_the_twistd_plugin(self) -> None:
        """``pip install .`` into a fresh virtualenv makes ``twistd`` list muca.

        To stay fast and offline-friendly, the dependencies are not
        reinstalled: the fresh environment sees this interpreter's
        site-packages through a ``.pth`` line (which, unlike a site
        directory, does not run the development install's own ``.pth``
        files, so the checkout itself stays invisible). The project is built
        by pip from a copy of the checkout, exactly as ``pip install .``
        builds it, and installed from that wheel.
        """
        work = Path(fresh_directory(self))
        source = work / "src"
        shutil.copytree(PROJECT, source, ignore=NOT_SOURCE)
        fresh = work / "venv"
        venv.EnvBuilder(with_pip=False).create(fresh)
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
        # A PYTHONPATH naming the checkout (trial run from elsewhere) would
        # leak it into the build and the fresh environment.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        run = {
            "check": True,
            "capture_output": True,
            "timeout": PROCESS_TIMEOUT,
            "env": env,
        }
        subprocess.run([*pip, "wheel", "--no-deps", "-w", work, source], **run)
        (wheel,) = work.glob("muca-*.whl")
        fresh_python = fresh / "bin" / "python"
        subprocess.run(
            [*pip, "--python", fresh_python, "install", "--no-deps", wheel], **run
        )
        installed = site_packages(fresh)
        self.assertTrue((installed / "twisted" / "plugins" / "muca_plugin.py").exists())
        self.assertFalse((installed / "twisted" / "__init__.py").exists())
        self.assertFalse((installed / "twisted" / "plugins" / "__init__.py").exists())
        (installed / "borrowed-dependencies.pth").write_text(
            f"{site_packages(Path(sys.prefix))}\n"
        )

        result = subprocess.run(
            [fresh_python, *TWISTD[1:], "--help"], cwd=work, text=True, **run
        )
        self.assertRegex(result.stdout, r"(?m)^\s+muca\s+Multi-user chat server")
        where = subprocess.run(
            [fresh_python, "-c", "import muca; print(muca.__file__)"],
            cwd=work, text=True, **run,
        )  # fmt: skip
        self.assertTrue(where.stdout.startswith(str(installed)), where.stdout)


class UsageTests(SynchronousTestCase):
    def test_help_documents_every_option(self) -> None:
        usage = str(tap.Options())
        for option in ("--port", "--listen", "--max-frame", "--list-interval"):
            self.assertIn(option, usage)

    def parse(self, *args: str) -> tap.Options:
        """``twistd muca ARGS`` parsed."""
        options = tap.Options()
        options.parseOptions(list(args))
        return options

    def test_default_is_tcp_port_40452_on_every_interface(self) -> None:
        options = self.parse()
        # A backlog for a class connecting at once (Twisted's default is 50).
        self.assertEqual(options["listen"], ["tcp:40452:backlog=1024"])
        self.assertEqual(options["max-frame"], 65536)

    def test_port_number_and_descriptions_and_repeated_listen(self) -> None:
        self.assertEqual(
            self.parse("--port", "4000")["listen"], ["tcp:4000:backlog=1024"]
        )
        self.assertEqual(
            self.parse("-p", r"tcp:4000:interface=\:\:1")["listen"],
            [r"tcp:4000:interface=\:\:1:backlog=1024"],
        )
        self.assertEqual(
            self.parse("-p", "tcp:4000:backlog=7")["listen"], ["tcp:4000:backlog=7"]
        )
        options = self.parse(
            "--listen",
            "tcp:1:interface=127.0.0.1",
            "--listen",
            "unix:/tmp/x.sock",
            "--max-frame",
            "1000",
            "--web",
            "none",
        )
        self.assertEqual(
            options["listen"],
            ["tcp:1:interface=127.0.0.1:backlog=1024", "unix:/tmp/x.sock"],
        )
        self.assertEqual(options["max-frame"], 1000)
        self.assertEqual(len(list(tap.makeService(options))), 2)

    def test_bad_numbers_are_usage_errors(self) -> None:
        for args in (
            ["--max-frame", "0"],
            ["--max-frame", "x"],
            ["--list-interval", "-1"],
        ):
            with self.assertRaises(UsageError, msg=args):
                self.parse(*args)

    def test_bad_option_value_is_one_line_without_traceback(self) -> None:
        result = subprocess.run(
            [*TWISTD, "-n", "muca", "--max-frame", "lots"],
            capture_output=True, text=True, timeout=PROCESS_TIMEOUT,
            cwd=self.mktemp_dir(),
        )  # fmt: skip
        self.assertNotEqual(result.returncode, 0)
        output = result.stdout + result.stderr
        self.assertNotIn("Traceback", output)
        self.assertRegex(output.splitlines()[-1], r"max-frame|lots|int")

    def mktemp_dir(self) -> str:
        """A fresh working directory for twistd (it writes twistd.pid there)."""
        return fresh_directory(self)


class TwistdTests(TestCase):
    """``twistd -n muca`` started, refused and stopped as a user would."""

    def spawn(self, *args: str) -> TwistdProcess:
        """Start ``twistd -n muca ARGS`` in a fresh directory; cleanup kills it."""
        cwd = fresh_directory(self)
        process = TwistdProcess()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        transport = reactor.spawnProcess(
            process, TWISTD[0], [*TWISTD, "-n", "muca", *args], env=env, path=cwd
        )
        self.addCleanup(self.reap, process, transport)
        return process

    async def reap(self, process: TwistdProcess, transport) -> None:
        """Kill the process if it still runs (by its own PID), and wait for it."""
        if process.reason is None:
            transport.signalProcess("KILL")
            await process.ended()

    async def test_busy_port_is_one_clear_line_and_non_zero_exit(self) -> None:
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = self.spawn("--port", str(port), "--web", "none")
        (reason,) = await process.ended()
        self.assertIsInstance(reason.value, ProcessTerminated)
        self.assertNotEqual(reason.value.exitCode, 0)
        self.assertNotIn("Traceback", process.output)
        naming = [line for line in process.output.splitlines() if str(port) in line]
        self.assertEqual(len(naming), 1, process.output)
        self.assertRegex(naming[0], r"(?i)cannot listen|in use")

    async def stop_by_signal(self, signum: int) -> None:
        """A serving ``twistd -n muca`` sent ``signum`` shuts down in order and
        exits by re-raising that signal (so a supervisor sees why it stopped)."""
        # No web listener: its default port may be taken by another server
        # on this machine.
        process = self.spawn("--listen", "tcp:0:interface=127.0.0.1", "--web", "none")
        match = await process.wait_for(r"ChatFactory starting on (\d+)")
        port = int(match.group(1))
        # It serves: a JOIN gets its ACK.
        client = await connect(self, port)
        client.send_json(join("Tony", "tony@hku.hk"))
        self.assertEqual(await client.next_object(), OKAY)
        os.kill(process_pid(process), signum)
        (reason,) = await process.ended(TIMEOUT)
        self.assertIsInstance(reason.value, ProcessTerminated, process.output)
        self.assertEqual(reason.value.signal, signum, process.output)
        self.assertNotIn("Traceback", process.output)
        self.assertIn("Server Shut Down.", process.output)
        await client.closed()

    async def test_sigterm_stops_a_running_server_cleanly(self) -> None:
        await self.stop_by_signal(signal.SIGTERM)

    async def test_ctrl_c_stops_a_running_server_cleanly(self) -> None:
        await self.stop_by_signal(signal.SIGINT)
