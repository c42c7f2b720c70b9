"""Tests of muca.client.demo: a real server and four real windows, stopped both ways."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.client.config import load_config
from muca.client.demo import default_configs
from tests.support.client import start_display
from tests.support.twistd import fresh_directory

ROOT = Path(__file__).resolve().parent.parent.parent
LIMIT = 60.0


class DefaultConfigTests(SynchronousTestCase):
    def test_the_four_demo_users_are_found_from_any_folder(self) -> None:
        elsewhere = fresh_directory(self)
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(elsewhere)
        self.assertFalse(Path("configs").exists())
        users = [load_config(path).nickname for path in default_configs()]
        self.assertEqual(users, ["Tony", "Mary", "Henry", "Peter"])

    def test_the_checkouts_configs_folder_is_the_packages(self) -> None:
        for path in default_configs():
            shipped = Path(path)
            self.assertEqual(
                (ROOT / "configs" / shipped.name).read_bytes(), shipped.read_bytes()
            )


# Runs muca-demo with SIGINT set to the disposition named by argv[1] (what a
# process inherits across exec: SIG_IGN stays ignored, a handler becomes
# SIG_DFL), whatever the test process itself has: a suite run as a shell
# script's background job runs with SIGINT ignored.
WITH_SIGINT = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGINT, getattr(signal, sys.argv[1]))\n"
    "demo = [sys.executable, '-m', 'muca.client.demo', *sys.argv[2:]]\n"
    "os.execv(sys.executable, demo)"
)


class DemoTests(TestCase):
    def start_demo(self, sigint: str = "SIG_DFL") -> subprocess.Popen[str]:
        """Start ``muca-demo --port 0`` with SIGINT ``SIG_DFL`` or ``SIG_IGN``."""
        env = dict(os.environ, DISPLAY=start_display(self))
        demo = subprocess.Popen(
            [sys.executable, "-c", WITH_SIGINT, sigint, "--port", "0"],
            # Anywhere, not only in the checkout: the configs are package data.
            cwd=fresh_directory(self),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.addCleanup(self.stop, demo)
        self.output = ""
        return demo

    def stop(self, demo: subprocess.Popen[str]) -> None:
        """Stop the demo as a user would (SIGTERM: it stops its server and
        windows); SIGKILL only if it does not, which would orphan them."""
        if demo.poll() is None:
            demo.terminate()
            try:
                demo.wait(LIMIT)
            except subprocess.TimeoutExpired:
                demo.kill()
        demo.wait(10)
        assert demo.stdout is not None
        demo.stdout.close()

    def read_until(self, demo: subprocess.Popen[str], pattern: str) -> None:
        """Read the demo's output until ``pattern`` matches it."""
        assert demo.stdout is not None
        deadline = time.monotonic() + LIMIT
        while not re.search(pattern, self.output):
            if time.monotonic() > deadline:
                self.fail(f"no {pattern!r} in the demo's output:\n{self.output}")
            ready, _, _ = select.select([demo.stdout], [], [], 0.2)
            if ready:
                line = demo.stdout.readline()
                if not line:
                    self.fail(f"demo ended before {pattern!r}:\n{self.output}")
                self.output += line

    def sigint_disposition(self, pid: int) -> str:
        """Whether process ``pid`` ignores, catches or leaves SIGINT alone."""
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":\t", 1) for line in status.splitlines())
        bit = 1 << (signal.SIGINT - 1)
        if int(fields["SigIgn"], 16) & bit:
            return "ignored"
        return "caught" if int(fields["SigCgt"], 16) & bit else "default"

    def pids(self) -> list[int]:
        found = re.findall(r"\(pid (\d+)\)", self.output)
        return [int(pid) for pid in found]

    def assert_all_gone(self, pids: list[int]) -> None:
        for pid in pids:
            with self.assertRaises(ProcessLookupError, msg=f"pid {pid} still runs"):
                os.kill(pid, 0)

    def test_four_windows_join_and_the_demo_ends_with_the_last_window(self) -> None:
        demo = self.start_demo()
        self.read_until(demo, r"(?s)(joined as.*){4}")
        for nickname in ("Tony", "Mary", "Henry", "Peter"):
            self.assertIn(f"joined as '{nickname}'", self.output)
        server, *windows = self.pids()
        self.assertEqual(len(windows), 4)
        for pid in windows:
            os.kill(pid, signal.SIGTERM)
        self.assertEqual(demo.wait(LIMIT), 0)
        assert demo.stdout is not None
        self.output += demo.stdout.read()
        self.assertIn("all windows closed; stopping the server", self.output)
        self.assert_all_gone([server, *windows])

    def test_a_closed_window_is_reaped_while_the_others_stay_open(self) -> None:
        demo = self.start_demo()
        self.read_until(demo, r"(?s)(joined as.*){4}")
        server, *windows = self.pids()
        # The last window: the first ones are still open when it goes.
        os.kill(windows[-1], signal.SIGTERM)
        self.read_until(demo, r"window for Peter closed")
        # Reaped: no zombie left in the process table.
        self.assertFalse(Path(f"/proc/{windows[-1]}").exists())
        for pid in [server, *windows[:-1]]:
            self.assertTrue(Path(f"/proc/{pid}").exists(), pid)
        self.assertIsNone(demo.poll())

    def test_ctrl_c_stops_the_server_and_every_window(self) -> None:
        self.assert_ctrl_c_stops_everything(self.start_demo("SIG_DFL"))

    def test_ctrl_c_stops_everything_when_started_with_sigint_ignored(self) -> None:
        self.assert_ctrl_c_stops_everything(self.start_demo("SIG_IGN"))

    def assert_ctrl_c_stops_everything(self, demo: subprocess.Popen[str]) -> None:
        self.read_until(demo, r"window for Peter")
        self.assertEqual(
            self.sigint_disposition(demo.pid), "caught", "muca-demo's SIGINT"
        )
        pids = self.pids()
        demo.send_signal(signal.SIGINT)
        self.assertEqual(demo.wait(LIMIT), 0)
        assert demo.stdout is not None
        self.output += demo.stdout.read()
        self.assertIn("interrupted; stopping everything", self.output)
        self.assert_all_gone(pids)
