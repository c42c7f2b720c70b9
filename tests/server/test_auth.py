"""muca.server.auth: JOIN's PASS checked through twisted.cred and twistd's --auth."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from twisted.cred import checkers, credentials, error, strcred
from twisted.internet import defer
from twisted.logger import capturedLogs, formatEvent
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from muca.protocol.messages import Join
from muca.server.auth import AnyPasswordChecker, make_portal
from muca.server.logins import DEFAULT_LOGIN_DELAY_MAX
from muca.service import tap
from muca.session.interfaces import IChatClient, IChatUser
from muca.session.realm import join_credentials, session_portal
from tests.support import OKAY, MemoryServer, connect, join, send, start_server
from tests.support.checkers import SlowChecker
from tests.support.twistd import TWISTD, fresh_directory

SECRET = "s3cr3t-Pässwörd"


@implementer(IChatClient)
class Nobody:
    """A client that is only logged in, never joined."""

    peer = "test"
    address = None
    framing = None


def logs_in(portal, uid: str, password: str | None) -> defer.Deferred[bool]:
    """Whether a JOIN of ``uid`` with ``password`` logs in through the
    session portal over ``portal``'s checkers."""
    sessions = session_portal(None, portal)  # type: ignore[arg-type]
    creds = join_credentials(Join("Nick", uid, password=password))
    login = sessions.login(creds, Nobody(), IChatUser)
    return login.addCallbacks(lambda _: True, lambda _: False)


def users_file(testcase: SynchronousTestCase, text: str) -> str:
    """A ``file:`` password file (``uid:password`` lines), removed at cleanup."""
    folder = Path(tempfile.mkdtemp(prefix="muca-test-"))
    testcase.addCleanup(
        lambda: [p.unlink() for p in folder.iterdir()] + [folder.rmdir()]
    )
    path = folder / "users.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def auth_options(*args: str) -> tap.Options:
    """``twistd muca ARGS`` parsed."""
    options = tap.Options()
    options.parseOptions(list(args))
    return options


class PortalTests(SynchronousTestCase):
    """Logins over the checkers that strcred makes."""

    def check(self, portal, uid: str, password: str | None) -> bool:
        return self.successResultOf(logs_in(portal, uid, password))

    def test_memory_checker_compares_str(self) -> None:
        portal = make_portal([strcred.makeChecker(f"memory:tony@hku.hk:{SECRET}")])
        self.assertTrue(self.check(portal, "tony@hku.hk", SECRET))
        self.assertFalse(self.check(portal, "tony@hku.hk", "wrong"))
        self.assertFalse(self.check(portal, "mary@hku.hk", SECRET))
        self.assertFalse(self.check(portal, "tony@hku.hk", None))

    def test_file_checker_compares_bytes(self) -> None:
        path = users_file(self, f"tony@hku.hk:{SECRET}\nmary@hku.hk:other\n")
        portal = make_portal([strcred.makeChecker(f"file:{path}")])
        self.assertTrue(self.check(portal, "tony@hku.hk", SECRET))
        self.assertTrue(self.check(portal, "mary@hku.hk", "other"))
        self.assertFalse(self.check(portal, "mary@hku.hk", SECRET))
        self.assertFalse(self.check(portal, "nobody", ""))

    def test_a_user_may_be_in_any_of_several_checkers(self) -> None:
        path = users_file(self, "mary@hku.hk:from-file\n")
        portal = make_portal(
            [
                strcred.makeChecker("memory:tony@hku.hk:from-memory"),
                strcred.makeChecker(f"file:{path}"),
            ]
        )
        self.assertTrue(self.check(portal, "tony@hku.hk", "from-memory"))
        self.assertTrue(self.check(portal, "mary@hku.hk", "from-file"))
        self.assertFalse(self.check(portal, "mary@hku.hk", "from-memory"))

    def test_no_checkers_is_no_portal(self) -> None:
        self.assertIsNone(make_portal([]))

    def test_a_broken_checker_refuses_and_logs_without_the_password(self) -> None:
        @implementer(checkers.ICredentialsChecker)
        class Broken:
            credentialInterfaces = (credentials.IUsernamePassword,)

            def requestAvatarId(self, creds):  # noqa: N802
                raise OSError("disk on fire")

        portal = make_portal([Broken()])
        with capturedLogs() as events:
            self.assertFalse(self.check(portal, "tony@hku.hk", SECRET))
        self.assertTrue(events)
        for event in events:
            self.assertNotIn(SECRET, formatEvent(event) + repr(event))
        self.flushLoggedErrors(OSError)

    def test_checker_sees_the_uid_as_user_name(self) -> None:
        seen = []

        @implementer(checkers.ICredentialsChecker)
        class Recording:
            credentialInterfaces = (credentials.IUsernamePassword,)

            def requestAvatarId(self, creds):  # noqa: N802
                seen.append((creds.username, creds.password))
                return defer.fail(error.UnauthorizedLogin())

        AnyPasswordChecker([Recording()]).requestAvatarId(
            credentials.UsernamePassword("tony@hku.hk", "pw")
        ).addErrback(lambda _: None)
        self.assertEqual(seen, [("tony@hku.hk", "pw"), (b"tony@hku.hk", b"pw")])


class AuthOptionTests(SynchronousTestCase):
    def test_auth_is_off_by_default(self) -> None:
        options = auth_options()
        self.assertEqual(options.get("credCheckers", []), [])
        self.assertIsNone(tap.makeService(options).portal)

    def test_memory_and_file_auth_options_make_a_portal(self) -> None:
        path = users_file(self, "tony@hku.hk:x\n")
        options = auth_options("--auth", "memory:a:b", "--auth", f"file:{path}")
        self.assertEqual(len(options["credCheckers"]), 2)
        self.assertIsNotNone(tap.makeService(options).portal)

    def test_missing_password_file_is_a_usage_error(self) -> None:
        with self.assertRaises(UsageError) as caught:
            auth_options("--auth", "file:/nonexistent/users.txt")
        self.assertIn("/nonexistent/users.txt", str(caught.exception))

    def test_help_mentions_auth(self) -> None:
        self.assertIn("--auth", str(tap.Options()))

    def test_blank_lines_of_a_password_file_are_allowed(self) -> None:
        path = users_file(self, "\ntony@hku.hk:x\n   \n\nmary@hku.hk:y\n\n")
        portal = tap.makeService(auth_options("--auth", f"file:{path}")).portal
        for uid, password in (("tony@hku.hk", "x"), ("mary@hku.hk", "y")):
            self.assertTrue(self.successResultOf(logs_in(portal, uid, password)), uid)


class AuthCommandLineTests(SynchronousTestCase):
    """``twistd -n muca --auth ...`` mistakes, as a shell user sees them: one
    line naming the option, exit status 1, before anything listens."""

    def refused(self, *args: str) -> str:
        """The line naming the mistake of ``twistd -n muca ARGS``."""
        ran = subprocess.run(
            [*TWISTD, "-n", "--pidfile=", "muca", "--port", "0", "--web", "none",
             "--db", "none", *args],
            capture_output=True, text=True, timeout=60, cwd=fresh_directory(self),
        )  # fmt: skip
        output = ran.stdout + ran.stderr
        self.assertEqual(ran.returncode, 1, output)
        self.assertNotIn("Traceback", output)
        self.assertNotIn("listening", output)
        lines = output.splitlines()
        # twistd's usage line, a pointer to --help, and the mistake.
        self.assertEqual(lines[0], "Usage: twistd [options]")
        self.assertEqual(lines[1], 'Run "twistd muca --help" for the options.')
        self.assertEqual(len(lines), 3, output)
        return lines[2]

    def test_a_line_without_a_colon_refuses_the_file_naming_the_line(self) -> None:
        path = users_file(self, "tony@hku.hk:x\n\nmary@hku.hk secret\n")
        line = self.refused("--auth", f"file:{path}")
        self.assertTrue(
            line.endswith(
                f": --auth file:{path}: line 3 has no ':' between user id and password"
            ),
            line,
        )

    def test_other_lines_no_user_could_log_in_with(self) -> None:
        cases = {
            "tony@hku.hk:pass:word\n": "line 1 has more than one ':'",
            "tony@hku.hk:x\n:secret\n": "line 2 has no user id before its ':'",
            "# users\ntony@hku.hk:x\n": "line 1 has no ':' between",
        }
        for text, problem in cases.items():
            path = users_file(self, text)
            line = self.refused("--auth", f"file:{path}")
            self.assertIn(f"--auth file:{path}: {problem}", line)
        latin1 = users_file(self, "")
        Path(latin1).write_bytes(b"tony@hku.hk:x\nj\xf6rg:y\n")
        line = self.refused("--auth", f"file:{latin1}")
        self.assertIn(f"file:{latin1}: line 2 is not UTF-8", line)

    def test_a_memory_user_without_a_password_is_one_usage_line(self) -> None:
        usage = "--auth memory:USER:PASSWORD[:USER:PASSWORD...]"
        for description in ("memory:alice", "memory:", "memory:a:b:carol"):
            line = self.refused("--auth", description)
            self.assertTrue(
                line.endswith(
                    f": --auth memory: a user without a password; write {usage}"
                ),
                line,
            )
            self.assertNotIn("Unexpected", line)

    def test_a_missing_file_and_an_unknown_method(self) -> None:
        cases = {
            "file:nowhere.txt": "--auth file: no such file: nowhere.txt",
            "file:": "--auth file: needs a file name: --auth file:PATH",
            "bogus:x": "--auth: 'bogus' is no authentication method (see --help-auth)",
        }
        for description, message in cases.items():
            line = self.refused("--auth", description)
            self.assertTrue(line.endswith(f": {message}"), line)


class JoinWithPasswordTests(SynchronousTestCase):
    """The server with a portal, in memory."""

    def setUp(self) -> None:
        checker = strcred.makeChecker(f"memory:tony@hku.hk:{SECRET}:mary@hku.hk:pw")
        self.server = MemoryServer(portal=make_portal([checker]))
        self.addCleanup(self.server.stop)

    def test_right_password_joins(self) -> None:
        peer = self.server.connect()
        peer.send_json(join("Tony", "tony@hku.hk", PASS=SECRET))
        self.assertEqual(peer.take()[0], OKAY)

    def test_wrong_or_missing_password_is_auth_failed(self) -> None:
        for extra in ({"PASS": "wrong"}, {}, {"PASS": ""}, {"PASS": SECRET.upper()}):
            self.server.clock.advance(DEFAULT_LOGIN_DELAY_MAX)  # the last one's delay
            peer = self.server.connect()
            peer.send_json(join("Tony", "tony@hku.hk", **extra))
            (ack,) = peer.take()
            self.assertEqual(
                (ack["CMD"], ack["TYPE"], ack["CODE"]), ("ACK", "FAIL", "AUTH_FAILED")
            )
            self.assertNotIn(SECRET, ack["REASON"])
        self.assertEqual(len(self.server.factory.room), 0)

    def test_someone_elses_password_does_not_work(self) -> None:
        peer = self.server.connect()
        peer.send_json(join("Tony", "tony@hku.hk", PASS="pw"))
        self.assertEqual(peer.take()[0]["CODE"], "AUTH_FAILED")

    def test_unknown_user_is_auth_failed(self) -> None:
        peer = self.server.connect()
        peer.send_json(join("Henry", "henry@hku.hk", PASS="pw"))
        self.assertEqual(peer.take()[0]["CODE"], "AUTH_FAILED")

    def test_retry_with_the_right_password_on_the_same_connection(self) -> None:
        peer = self.server.connect()
        peer.send_json(join("Tony", "tony@hku.hk", PASS="wrong"))
        peer.send_json(join("Tony", "tony@hku.hk", PASS=SECRET))
        # The right password after a failure is not slowed.
        (fail, okay, _roster) = peer.take()
        self.assertEqual(fail["CODE"], "AUTH_FAILED")
        self.assertEqual(okay, OKAY)

    def test_non_string_password_is_bad_join(self) -> None:
        peer = self.server.connect()
        peer.send_json(join("Tony", "tony@hku.hk", PASS=12345))
        self.assertEqual(peer.take()[0]["CODE"], "BAD_JOIN")

    def test_password_is_checked_before_the_uid_is_taken(self) -> None:
        tony = self.server.connect()
        tony.send_json(join("Tony", "tony@hku.hk", PASS=SECRET))
        intruder = self.server.connect()
        intruder.send_json(join("Tony2", "tony@hku.hk", PASS="guess"))
        self.assertEqual(intruder.take()[0]["CODE"], "AUTH_FAILED")

    def test_passwords_are_never_logged(self) -> None:
        with capturedLogs() as events:
            for password in (SECRET, "wrong-one"):
                peer = self.server.connect()
                peer.send_json(join("Tony", "tony@hku.hk", PASS=password))
                peer.take()
                peer.lose()
        self.assertGreaterEqual(len(events), 3)
        for event in events:
            text = formatEvent(event) + repr(event)
            self.assertNotIn(SECRET, text)
            self.assertNotIn("wrong-one", text)

    def test_without_auth_a_password_is_ignored(self) -> None:
        server = MemoryServer()
        self.addCleanup(server.stop)
        peer = server.connect()
        peer.send_json(join("Tony", "tony@hku.hk", PASS="anything"))
        self.assertEqual(peer.take()[0], OKAY)


class SlowCheckerTests(SynchronousTestCase):
    """A checker that answers later: the connection's later frames wait."""

    def setUp(self) -> None:
        self.checker = SlowChecker()
        self.server = MemoryServer(portal=make_portal([self.checker]), rate=None)
        self.addCleanup(self.server.stop)
        self.mary = self.server.connect()
        self.mary.send_json(join("Mary", "mary@hku.hk", PASS="pw"))
        self.checker.answer()
        self.mary.take()

    def test_frames_after_a_join_wait_for_the_password_check(self) -> None:
        tony = self.server.connect()
        tony.send(
            b'{"CMD":"JOIN","UN":"Tony","UID":"tony@hku.hk","PASS":"pw"}\n'
            b'{"CMD":"SEND","MSG":"first","TO":[],"FROM":"tony@hku.hk"}\n'
        )
        self.assertEqual(tony.take(), [])
        self.assertEqual(tony.transport.producerState, "paused")  # reading paused
        tony.send(b'{"CMD":"SEND","MSG":"second","TO":[],"FROM":"tony@hku.hk"}\n')
        self.assertEqual(self.mary.take(), [])
        self.checker.answer()
        self.assertEqual(tony.transport.producerState, "producing")
        self.assertEqual(tony.take()[0], OKAY)
        got = [obj.get("MSG") for obj in self.mary.take() if obj["CMD"] == "MSG"]
        self.assertEqual(got, ["first", "second"])

    def test_wrong_password_then_the_waiting_send_is_not_joined(self) -> None:
        tony = self.server.connect()
        tony.send_json(join("Tony", "tony@hku.hk", PASS="nope"))
        tony.send_json(send("hello", [], "tony@hku.hk"))
        self.checker.answer()  # the str attempt, then the bytes attempt
        self.assertEqual(tony.take(), [])
        self.checker.answer()
        fail, error_ = tony.take()
        self.assertEqual((fail["CODE"], error_["CODE"]), ("AUTH_FAILED", "NOT_JOINED"))

    def test_frames_behind_a_password_check_then_wait_for_the_rate(self) -> None:
        server = MemoryServer(portal=make_portal([self.checker]), rate=20, burst=50)
        self.addCleanup(server.stop)
        mary = server.connect()
        mary.send_json(join("Mary", "mary@hku.hk", PASS="pw"))
        self.checker.answer()
        mary.take()
        tony = server.connect()
        tony.send(
            b'{"CMD":"JOIN","UN":"Tony","UID":"tony@hku.hk","PASS":"pw"}\n'
            + b"".join(
                b'{"CMD":"SEND","MSG":"m%d","TO":[],"FROM":"tony@hku.hk"}\n' % i
                for i in range(70)
            )
        )
        self.assertEqual(tony.take(), [])
        self.checker.answer()
        self.assertEqual(tony.take()[0], OKAY)
        self.assertEqual(tony.transport.producerState, "paused")  # now the rate
        texts = [o["MSG"] for o in mary.take() if o["CMD"] == "MSG"]
        self.assertEqual(len(texts), 49)  # the JOIN took a token too
        server.clock.advance(1.05)
        texts += [o["MSG"] for o in mary.take() if o["CMD"] == "MSG"]
        self.assertEqual(texts, [f"m{i}" for i in range(70)])
        self.assertEqual(tony.transport.producerState, "producing")

    def test_connection_lost_during_the_check(self) -> None:
        tony = self.server.connect()
        tony.send_json(join("Tony", "tony@hku.hk", PASS="pw"))
        tony.lose()
        self.checker.answer()
        self.assertNotIn("tony@hku.hk", self.server.factory.room)
        self.assertEqual(self.server.factory.counter.total, 1)


class EndToEndAuthTests(TestCase):
    async def test_twistd_auth_option_over_loopback(self) -> None:
        path = users_file(self, f"tony@hku.hk:{SECRET}\n")
        port = await start_server(self, "--auth", f"file:{path}")
        refused = await connect(self, port)
        refused.send_json(join("Tony", "tony@hku.hk", PASS="wrong"))
        self.assertEqual((await refused.next_object())["CODE"], "AUTH_FAILED")
        tony = await connect(self, port)
        tony.send_json(join("Tony", "tony@hku.hk", PASS=SECRET))
        self.assertEqual(await tony.next_object(), OKAY)
