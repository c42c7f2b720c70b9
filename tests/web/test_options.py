"""``twistd muca``'s web options: the default listener, ``--web none``,
``--web-origin``, a busy web port, and a real ``twistd -n muca`` serving
the page."""

from __future__ import annotations

import os
import socket

from twisted.internet import reactor
from twisted.internet.error import ProcessTerminated
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase

from muca.service import tap
from tests.support.twistd import TWISTD, TwistdProcess, fresh_directory, start_twistd
from tests.web.test_gateway import get, header


def parse(*args: str) -> tap.Options:
    """``twistd muca ARGS`` parsed."""
    options = tap.Options()
    options.parseOptions(list(args))
    return options


class WebOptionTests(SynchronousTestCase):
    def test_web_listener_is_on_by_default_at_40080(self) -> None:
        self.assertEqual(parse()["web"], ["tcp:40080:backlog=1024"])
        self.assertEqual(len(list(tap.makeService(parse()))), 2)

    def test_web_none_turns_it_off_and_web_repeats(self) -> None:
        self.assertEqual(parse("--web", "none")["web"], [])
        self.assertEqual(len(list(tap.makeService(parse("--web", "none")))), 1)
        options = parse("--web", "tcp:8080", "--web", "tcp6:8081:interface=\\:\\:1")
        self.assertEqual(
            options["web"],
            ["tcp:8080:backlog=1024", "tcp6:8081:interface=\\:\\:1:backlog=1024"],
        )
        with self.assertRaises(UsageError):
            parse("--web", "none", "--web", "tcp:8080")

    def test_a_web_description_that_cannot_listen_is_a_usage_error(self) -> None:
        for description in ("tcp:99999", "nonsense:1", "ssl:8443:privateKey=no.pem"):
            with self.assertRaises(UsageError) as raised:
                parse("--web", description)
            self.assertIn("--web", str(raised.exception))

    def test_web_origin_repeats(self) -> None:
        options = parse(
            "--web-origin", "https://a.example", "--web-origin", "http://b.example:81"
        )
        self.assertEqual(
            options["web-origin"], ["https://a.example", "http://b.example:81"]
        )

    def test_a_plain_port_number_is_a_tcp_listener(self) -> None:
        self.assertEqual(parse("--web", "40081")["web"], ["tcp:40081:backlog=1024"])
        for wrong in ("99999", "-5", "abc"):
            with self.assertRaises(UsageError) as raised:
                parse("--web", wrong)
            self.assertEqual(
                str(raised.exception),
                f"--web: {wrong!r} is not a port number (0-65535)",
            )

    def test_web_host_repeats_and_refuses_what_is_no_host(self) -> None:
        options = parse("--web-host", "Chat.Example.org", "--web-host", "[::1]")
        self.assertEqual(options["web-host"], ["chat.example.org", "::1"])
        for wrong in ("http://chat.example.org", "chat.example.org:80", "a b", ""):
            with self.assertRaises(UsageError) as raised:
                parse("--web-host", wrong)
            self.assertIn("--web-host: ", str(raised.exception))

    def test_metrics_from_takes_networks_and_names_a_wrong_one(self) -> None:
        options = parse(
            "--metrics-from", "10.0.0.0/8,::1", "--metrics-from", "192.0.2.7"
        )
        self.assertEqual(
            [str(n) for n in options["metrics-from"]],
            ["10.0.0.0/8", "::1/128", "192.0.2.7/32"],
        )
        self.assertEqual(parse()["metrics-from"], [])
        with self.assertRaises(UsageError) as raised:
            parse("--metrics-from", "10.0.0.0/8,intranet")
        self.assertEqual(
            str(raised.exception),
            "--metrics-from: 'intranet' is not an IP address or network",
        )

    def test_web_request_timeout_is_a_positive_number(self) -> None:
        self.assertEqual(parse()["web-request-timeout"], 10.0)
        self.assertEqual(
            parse("--web-request-timeout", "2.5")["web-request-timeout"], 2.5
        )
        for wrong in ("0", "-1", "inf", "soon"):
            with self.assertRaises(UsageError) as raised:
                parse("--web-request-timeout", wrong)
            self.assertIn("--web-request-timeout: ", str(raised.exception))

    def test_help_names_the_web_options(self) -> None:
        usage = str(tap.Options())
        for option in (
            "--web=",
            "--web-origin=",
            "--web-host=",
            "--metrics-from=",
            "--web-request-timeout=",
            "40080",
        ):
            self.assertIn(option, usage)


class TwistdWebTests(TestCase):
    async def test_twistd_serves_the_page_and_the_health_check(self) -> None:
        server = await start_twistd(self, "--web", "tcp:0:interface=127.0.0.1")
        match = await server.process.wait_for(
            r"muca: browser client on http://127\.0\.0\.1:(\d+)/\n"
        )
        port = int(match.group(1))
        self.assertIn(f"muca: listening on 127.0.0.1:{port}\n", server.process.output)
        response, body = await get(port, "/")
        self.assertEqual(response.code, 200)
        self.assertIn(b"<title>", body)
        self.assertIsNotNone(header(response, "content-security-policy"))
        response, body = await get(port, "/healthz")
        self.assertEqual((response.code, body), (200, b"ok\n"))

    async def test_a_port_number_listens_everywhere_named_by_web_host(self) -> None:
        server = await start_twistd(
            self, "--web", "0", "--web-host", "chat.example.org"
        )
        match = await server.process.wait_for(
            r"muca: browser client on http://chat\.example\.org:(\d+)/\n"
        )
        port = int(match.group(1))
        self.assertIn(f"muca: listening on 0.0.0.0:{port}\n", server.process.output)
        response, body = await get(port, "/healthz")
        self.assertEqual((response.code, body), (200, b"ok\n"))

    async def test_busy_web_port_is_one_clear_line_and_exit_1(self) -> None:
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = TwistdProcess()
        argv = [
            *TWISTD,
            "-n",
            "--pidfile=",
            "muca",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--web",
            f"tcp:{port}:interface=127.0.0.1",
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        transport = reactor.spawnProcess(
            process, TWISTD[0], argv, env=env, path=fresh_directory(self)
        )

        async def reap() -> None:
            if process.reason is None:
                transport.signalProcess("KILL")
                await process.ended()

        self.addCleanup(reap)
        (reason,) = await process.ended()
        self.assertIsInstance(reason.value, ProcessTerminated)
        self.assertEqual(reason.value.exitCode, 1)
        self.assertNotIn("Traceback", process.output)
        naming = [line for line in process.output.splitlines() if str(port) in line]
        self.assertEqual(len(naming), 1, process.output)
        self.assertRegex(naming[0], r"cannot listen on port \d+: .*in use")
