"""The TCP front-end as a wire adapter onto the session, through in-memory
transports: while a login is decided the frames after it wait, and a
connection that goes meanwhile leaves no session behind."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from muca.server.auth import make_portal
from muca.session.interfaces import IChatClient
from tests.support import OKAY, MemoryServer, join, roster, send
from tests.support.checkers import SlowChecker

MARY = ("Mary", "mary@hku.hk")
TONY = ("Tony", "tony@hku.hk")


class SlowLoginTests(SynchronousTestCase):
    """A password checker that answers when the test says so."""

    def setUp(self) -> None:
        self.checker = SlowChecker()
        self.server = MemoryServer(portal=make_portal([self.checker]), rate=None)
        self.addCleanup(self.server.stop)
        self.mary = self.server.connect()
        self.mary.send_json(join(*MARY, PASS="pw"))
        self.checker.answer()
        self.assertEqual(self.mary.take(), [OKAY, roster(MARY)])

    def test_a_tcp_connection_is_a_chat_client(self) -> None:
        self.assertTrue(verifyObject(IChatClient, self.mary.protocol))

    def test_a_shutdown_answers_the_join_and_what_waits_behind_it_in_order(
        self,
    ) -> None:
        tony = self.server.connect()
        tony.send_json(join(*TONY, PASS="pw"))
        tony.send_json(send("first", [], TONY[1]))
        tony.send_json({"CMD": "HISTORY", "BEFORE": 5})
        self.server.factory.close_all()
        answers = tony.take()
        self.assertEqual(
            [(a["CMD"], a.get("TYPE"), a["CODE"], a.get("REF")) for a in answers],
            [
                ("ACK", "FAIL", "SERVER_SHUTDOWN", None),
                ("ERROR", None, "SERVER_SHUTDOWN", "SEND"),
                ("ERROR", None, "SERVER_SHUTDOWN", "HISTORY"),
            ],
        )
        # The right password, too late: nobody joins, nothing more is said.
        self.checker.answer()
        self.assertEqual(tony.take(), [])
        self.assertNotIn(TONY[1], self.server.factory.room)

    def test_a_connection_lost_during_its_login_joins_nobody(self) -> None:
        tony = self.server.connect()
        tony.send_json(join(*TONY, PASS="pw"))
        tony.lose()
        self.checker.answer()
        self.assertEqual(self.mary.take(), [])
        self.assertNotIn(TONY[1], self.server.factory.room)

    def test_a_refused_login_lets_the_next_join_try_again(self) -> None:
        tony = self.server.connect()
        tony.send_json(join(*TONY, PASS="wrong"))
        tony.send_json(send("too soon", [], TONY[1]))
        tony.send_json(join(*TONY, PASS="pw"))
        self.checker.answer()  # wrong as str,
        self.checker.answer()  # and as bytes
        refused, not_joined = tony.take()
        self.assertEqual((refused["TYPE"], refused["CODE"]), ("FAIL", "AUTH_FAILED"))
        self.assertEqual(
            (not_joined["CODE"], not_joined["REF"]), ("NOT_JOINED", "SEND")
        )
        # The second JOIN waits for its login delay, then for the checker.
        self.server.clock.advance(self.server.factory.logins.first)
        self.checker.answer()
        self.assertEqual(tony.take(), [OKAY, roster(MARY, TONY)])
        self.assertEqual(self.mary.take(), [roster(MARY, TONY)])
