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

from twisted.trial.unittest import TestCase

from tests.support.client import start_display

ROOT = Path(__file__).resolve().parent.parent.parent
LIMIT = 60.0


class DemoTests(TestCase):
    def start_demo(self) -> subprocess.Popen[str]:
        env = dict(os.environ, DISPLAY=start_display(self))
        demo = subprocess.Popen(
            [sys.executable, "-m", "muca.client.demo", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.addCleanup(self.stop, demo)
        self.output = ""
        return demo

    def stop(self, demo: subprocess.Popen[str]) -> None:
        if demo.poll() is None:
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

    def test_ctrl_c_stops_the_server_and_every_window(self) -> None:
        demo = self.start_demo()
        self.read_until(demo, r"window for Peter")
        pids = self.pids()
        demo.send_signal(signal.SIGINT)
        self.assertEqual(demo.wait(LIMIT), 0)
        assert demo.stdout is not None
        self.output += demo.stdout.read()
        self.assertIn("interrupted; stopping everything", self.output)
        self.assert_all_gone(pids)
