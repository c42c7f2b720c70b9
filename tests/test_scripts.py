"""``scripts/test`` as a developer runs it: on the paths given only, and
without touching what a server of the same checkout runs from.

The second test copies the checkout, installs it there as the README's
first command does (a regular ``pip install .`` into ``.venv``; offline:
the dependencies are borrowed from this interpreter, as in
``test_packaging``), starts a server from that install, and runs
``scripts/test`` in the copy while fetching the server's page. It installs
a test environment from the package index, so it takes half a minute.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support.http import http_get
from tests.support.redis import free_port
from tests.support.twistd import PROCESS_TIMEOUT, TWISTD, TwistdProcess, fresh_directory
from tests.test_packaging import NOT_SOURCE, site_packages

ROOT = Path(__file__).resolve().parent.parent
#: What ``scripts/test`` may take on a loaded machine, a fresh install included.
SCRIPT_LIMIT = 400.0
# A PYTHONPATH naming the checkout (trial run from elsewhere) would leak it
# into the copy's environments.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def collected(output: str) -> tuple[list[str], int]:
    """The test ids ``pytest --co -q`` listed, and the count it gave."""
    ids = re.findall(r"(?m)^(tests/\S+::\S+)$", output)
    count = re.search(r"(?m)^(\d+) tests? collected", output)
    assert count, output
    return ids, int(count.group(1))


class ScriptTestTests(TestCase):
    timeout = SCRIPT_LIMIT * 2

    async def run_script(self, folder: Path, *args: str) -> str:
        """Run ``folder/scripts/test ARGS``; its output, once it exits with 0."""
        process = TwistdProcess()
        argv = [str(folder / "scripts" / "test"), *args]
        reactor.spawnProcess(process, argv[0], argv, env=ENV, path=str(folder))
        (ended,) = await process.ended(SCRIPT_LIMIT)
        self.assertEqual(ended.value.exitCode, 0, process.output[-3000:])
        return process.output

    async def test_paths_given_are_the_only_tests_run(self) -> None:
        output = await self.run_script(
            ROOT, "tests/test_docs.py", "--co", "-q", "-p", "no:cacheprovider"
        )
        ids, count = collected(output)
        self.assertEqual(count, len(ids))
        self.assertGreater(count, 0)
        for test in ids:
            self.assertTrue(test.startswith("tests/test_docs.py::"), test)

    async def test_a_server_installed_in_the_checkout_keeps_serving(self) -> None:
        work = Path(fresh_directory(self))
        checkout = work / "checkout"
        shutil.copytree(ROOT, checkout, ignore=NOT_SOURCE)
        installed = self.install_as_the_readme_does(work, checkout)
        server = await self.start_server(checkout)
        page = installed / "muca" / "web" / "static" / "index.html"
        self.assertEqual(await self.page_status(server), 200)

        # scripts/test, while the page is fetched again and again.
        process = TwistdProcess()
        argv = [str(checkout / "scripts" / "test"), "tests/test_docs.py", "--co"]
        reactor.spawnProcess(
            process, argv[0], [*argv, "-q"], env=ENV, path=str(checkout)
        )
        answers = []
        for _ in range(int(SCRIPT_LIMIT / 0.25)):
            answers.append(await self.page_status(server))
            if process.reason is not None:
                break
            await deferLater(reactor, 0.25, lambda: None)
        (ended,) = await process.ended(SCRIPT_LIMIT)
        self.assertEqual(ended.value.exitCode, 0, process.output[-3000:])
        self.assertEqual(set(answers), {200}, process.output[-3000:])
        self.assertTrue(page.is_file())
        self.assertIn("left as it is; testing in .venv-test", process.output)
        ids, count = collected(process.output)
        self.assertEqual((count, len(ids) > 0), (len(ids), True))
        # The tests ran on the checkout, not on the server's install.
        where = subprocess.run(
            [checkout / ".venv-test" / "bin" / "python", "-c",
             "import muca; print(muca.__file__)"],
            cwd=work, text=True, capture_output=True, env=ENV, check=True,
        )  # fmt: skip
        self.assertEqual(where.stdout.strip(), str(checkout / "muca" / "__init__.py"))

        # Nothing changed: the second run installs nothing.
        stamp = checkout / ".venv-test" / ".muca-development-install"
        (record,) = site_packages(checkout / ".venv-test").glob("muca-*.dist-info")
        before = (stamp.stat().st_mtime_ns, record.stat().st_ino)
        await self.run_script(checkout, "tests/test_docs.py", "--co", "-q")
        self.assertEqual((stamp.stat().st_mtime_ns, record.stat().st_ino), before)
        self.assertEqual(await self.page_status(server), 200)

    def install_as_the_readme_does(self, work: Path, checkout: Path) -> Path:
        """``python3 -m venv .venv && .venv/bin/pip install .`` in ``checkout``,
        its dependencies borrowed; the install's site-packages."""
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
        run = {"check": True, "capture_output": True, "timeout": PROCESS_TIMEOUT}
        subprocess.run(
            [*pip, "wheel", "--no-deps", "-w", work, checkout], env=ENV, **run
        )
        (wheel,) = work.glob("muca-*.whl")
        target = checkout / ".venv"
        venv.EnvBuilder(with_pip=False).create(target)
        python = target / "bin" / "python"
        subprocess.run(
            [*pip, "--python", python, "install", "--no-deps", wheel], env=ENV, **run
        )
        installed = site_packages(target)
        (installed / "borrowed-dependencies.pth").write_text(
            f"{site_packages(Path(sys.prefix))}\n"
        )
        return installed

    async def start_server(self, checkout: Path) -> int:
        """``twistd -n muca`` from the checkout's ``.venv``; its web port."""
        web = free_port()
        process = TwistdProcess()
        python = str(checkout / ".venv" / "bin" / "python")
        argv = [python, *TWISTD[1:], "-n", "--pidfile=", "muca", "--db", "none",
                "--port", "tcp:0:interface=127.0.0.1",
                "--web", f"tcp:{web}:interface=127.0.0.1"]  # fmt: skip
        env = {**ENV, "PYTHONUNBUFFERED": "1"}
        transport = reactor.spawnProcess(
            process, python, argv, env=env, path=fresh_directory(self)
        )

        async def reap() -> None:
            if process.reason is None:
                transport.signalProcess("KILL")
                await process.ended()

        self.addCleanup(reap)
        await process.wait_for(r"muca: listening on 127\.0\.0\.1:\d+")
        return web

    async def page_status(self, port: int) -> int:
        """The status of the page at ``/``."""
        response, _ = await http_get(port, "/")
        return response.code
