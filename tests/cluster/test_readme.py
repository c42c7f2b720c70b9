"""The README's cluster on one machine: its three ``twistd`` lines, run as
written from one folder (each node has its own port, web port and pid
file), and two users on two of the nodes chatting."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.cluster.support import WAIT, join_on, next_of, roster_becomes
from tests.support import msg, send, strip_ts
from tests.support.http import http_get
from tests.support.readme import indented_block
from tests.support.redis import free_port, start_redis
from tests.support.twistd import TWISTD, TwistdProcess, fresh_directory

TONY = ("Tony", "tony@hku.hk")
MARY = ("Mary", "mary@hku.hk")
# What the test substitutes in the README's lines: its private Redis for the
# machine's, free ports for the README's (which may be taken on a test
# machine), and this interpreter's twistd for .venv/bin/twistd.
REDIS_PORT = "6379"
NODE_PORTS = r"\b40(46[1-3]|08[1-3])\b"


class Node:
    """One of the README's nodes: its process, pid file, client port."""

    def __init__(self, command: str, folder: str) -> None:
        argv = shlex.split(command)
        if argv[0] != ".venv/bin/twistd":
            raise AssertionError(f"not a twistd line: {command}")
        self.port = int(argv[argv.index("--port") + 1])
        self.web_port = int(argv[argv.index("--web") + 1].removeprefix("tcp:"))
        self.pidfile = Path(folder, argv[2].removeprefix("--pidfile="))
        self.process = TwistdProcess()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.transport = reactor.spawnProcess(
            self.process, TWISTD[0], [*TWISTD, *argv[1:]], env=env, path=folder
        )

    async def stop(self) -> None:
        """SIGTERM by its PID (it leaves the cluster), SIGKILL if it lingers."""
        if self.process.reason is None:
            self.transport.signalProcess("TERM")
            try:
                await self.process.ended(WAIT)
            except Exception:
                self.transport.signalProcess("KILL")
                await self.process.ended()


class ReadmeClusterTests(TestCase):
    def readme_commands(self, redis_port: int) -> list[str]:
        lines = indented_block("machine's Redis:")
        self.assertEqual(len(lines), 3, lines)
        ports: dict[str, str] = {}

        def free(match: re.Match[str]) -> str:
            return ports.setdefault(match.group(0), str(free_port()))

        lines = [re.sub(NODE_PORTS, free, line) for line in lines]
        self.assertEqual(len(ports), 6, ports)  # three ports, three web ports
        return [line.replace(f":{REDIS_PORT}/", f":{redis_port}/") for line in lines]

    async def test_three_nodes_on_one_machine_and_two_users_chat(self) -> None:
        redis = start_redis(self)
        folder = fresh_directory(self)  # one folder for the three, as a user's shell
        nodes = []
        for command in self.readme_commands(redis.port):
            node = Node(command, folder)
            self.addCleanup(node.stop)
            nodes.append(node)
        for node in nodes:
            try:
                await node.process.wait_for(r"cluster: node \w+ joined")
            except Exception:
                self.fail(f"a node did not join:\n{node.process.output[-3000:]}")
            self.assertEqual(int(node.pidfile.read_text()), node.transport.pid)
            response, body = await http_get(node.web_port, "/healthz")
            self.assertEqual((response.code, body), (200, b"ok\n"))

        tony = await join_on(self, nodes[0], *TONY)
        await roster_becomes(tony, [TONY])
        mary = await join_on(self, nodes[1], *MARY)
        await roster_becomes(mary, [TONY, MARY])
        await roster_becomes(tony, [TONY, MARY])
        tony.send_json(send("hello from node 1", [], TONY[1]))
        heard = await next_of(mary, "MSG")
        self.assertEqual(strip_ts(heard), msg("ALL", "hello from node 1", TONY[1]))
        mary.send_json(send("hi Tony, from node 2", [TONY[1]], MARY[1]))
        heard = await next_of(tony, "MSG")
        self.assertEqual(
            strip_ts(heard), msg("PRIVATE", "hi Tony, from node 2", MARY[1])
        )
