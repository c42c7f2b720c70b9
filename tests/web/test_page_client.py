"""The browser client tells the truth: refused messages marked and back in
the box, known users away offered and written to, a departed sender's
nickname in the history, the server's too-long rule in the Tk client's
words, and at phone size the newest message and a refused join in view.
Real Chromium, real server (and a real PostgreSQL stopped under it)."""

from __future__ import annotations

import os
from typing import Any

import psycopg
from twisted.enterprise import adbapi
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from muca.client.errors import MessageTooLong
from muca.web.gateway import make_site
from tests.support import browser, start_service
from tests.support import postgres as pgsupport
from tests.support.browser import BROWSER, LAPTOP, PHONE, Tab
from tests.support.client import RecordingObserver, wait_until
from tests.support.twistd import fresh_directory
from tests.web.test_page import ARTIFACTS, MARY, TONY, join_in, write

PASSWORDS = {MARY[1]: "m", TONY[1]: "t"}
AUTH = ("--auth", "memory:" + ":".join(f"{u}:{p}" for u, p in PASSWORDS.items()))


def join_with_password(tab: Tab, who: tuple[str, str], others: int) -> None:
    """Join, be asked for the password, give it (browser thread)."""
    page = tab.page
    page.fill("#nickname", who[0])
    page.fill("#uid", who[1])
    page.click("#join")
    page.wait_for_selector("#password-field:not([hidden])")
    page.fill("#password", PASSWORDS[who[1]])
    page.click("#join")
    page.wait_for_selector("#app[data-state='joined']")
    page.wait_for_function(
        f"document.querySelectorAll('#peers li:not(.away)').length === {others + 1}"
    )


def console_lines(tab: Tab) -> list[str]:
    return tab.page.eval_on_selector_all(
        "#console li .text", "(lines) => lines.map((l) => l.textContent)"
    )


class PageTestCase(TestCase):
    async def serve(self, *args: str) -> tuple[str, int]:
        """A server with these options and its page; (page URL, TCP port)."""
        listen = ("--listen", "tcp:0:interface=127.0.0.1")
        (tcp,) = await start_service(self, *listen, *args)
        url = await browser.listen_site(self, make_site(tcp.factory))
        return url, tcp.getHost().port

    async def bot(
        self, port: int, who: tuple[str, str], password: str | None = None
    ) -> tuple[ChatClient, RecordingObserver]:
        observer = RecordingObserver()
        client = ChatClient(reactor, *who, observer)
        self.addCleanup(client.leave)
        await client.connect_tcp("127.0.0.1", port)
        await client.join(password)
        return client, observer

    def tabs(self) -> dict[str, Tab]:
        tabs: dict[str, Tab] = {}

        def close_tabs() -> None:
            for tab in tabs.values():
                tab.close()

        self.addCleanup(lambda: BROWSER.deferred(close_tabs))
        return tabs


class RefusalTests(PageTestCase):
    async def test_a_message_the_store_refuses_is_marked_and_back_in_the_box(
        self,
    ) -> None:
        database = pgsupport.private_server(self)
        url, port = await self.serve("--db", database.conninfo())
        tony, seen = await self.bot(port, TONY)
        tabs = self.tabs()

        def open_tab() -> None:
            tabs["mary"] = BROWSER.open_tab(url, LAPTOP)
            join_in(tabs["mary"], MARY, 1)
            write(tabs["mary"], "this one is stored", (TONY[1],))

        await BROWSER.deferred(open_tab)
        await seen.next_of("message")
        pgsupport.stop(database)

        def refused() -> dict[str, Any]:
            page = tabs["mary"].page
            write(tabs["mary"], "this one cannot be", (TONY[1],))
            page.wait_for_selector("#messages li.msg.own.refused")
            page.screenshot(path=str(ARTIFACTS / "web-refused.png"))
            return page.evaluate(
                """() => ({
                  refused: [...document.querySelectorAll('#messages li.msg.own')]
                    .map((li) => [li.querySelector('.body').textContent,
                                  li.classList.contains('refused')]),
                  note: document.querySelector('.refused-note').textContent,
                  box: document.getElementById('text').value,
                  to: document.getElementById('recipients').textContent,
                })"""
            )

        shown = await BROWSER.deferred(refused)
        self.assertEqual(
            shown["refused"],
            [["this one is stored", False], ["this one cannot be", True]],
        )
        self.assertTrue(
            shown["note"].startswith(
                "Not delivered: the server says STORE_UNAVAILABLE: "
            ),
            shown["note"],
        )
        self.assertEqual((shown["box"], shown["to"]), ("this one cannot be", "Tony"))
        self.assertEqual([m.text for m in seen.of("message")], ["this one is stored"])
        self.assertEqual(tabs["mary"].errors, [])
        self.flushLoggedErrors(psycopg.OperationalError, adbapi.ConnectionLost)

    async def test_too_long_is_said_as_the_tk_client_says_it(self) -> None:
        url, port = await self.serve()
        tony, _ = await self.bot(port, TONY)
        text = "é" * 30_000 + "x" * 40_000
        with self.assertRaises(MessageTooLong) as raised:
            tony.send([MARY[1]], text)
        tabs = self.tabs()

        def too_long() -> list[str]:
            tabs["mary"] = BROWSER.open_tab(url, LAPTOP)
            join_in(tabs["mary"], MARY, 1)
            page = tabs["mary"].page
            page.click(f"#peers li[data-uid='{TONY[1]}'] button")
            page.fill("#text", text)
            page.press("#text", "Enter")
            page.wait_for_function(
                "document.querySelector('#console li:last-child .text')"
                ".textContent.startsWith('message too long')"
            )
            return console_lines(tabs["mary"])

        lines = await BROWSER.deferred(too_long)
        # Mary to Tony and Tony to Mary: ids of one length, frames of one size.
        self.assertEqual(lines[-1], str(raised.exception))
        self.assertEqual(
            lines[-1],
            "message too long: 100,065 bytes, the server takes at most 65,536"
            " (the whole SEND, in UTF-8); the first 35,471 of its 70,000"
            " characters fit",
        )


class AwayTests(PageTestCase):
    async def history_server(self) -> tuple[str, int]:
        database = os.path.join(fresh_directory(self), "history.db")
        return await self.serve(*AUTH, "--db", database)

    async def test_a_user_who_left_is_offered_away_and_gets_the_message(
        self,
    ) -> None:
        url, port = await self.history_server()
        tony, _ = await self.bot(port, TONY, PASSWORDS[TONY[1]])
        tabs = self.tabs()

        def open_tab() -> None:
            tabs["mary"] = BROWSER.open_tab(url, LAPTOP)
            join_with_password(tabs["mary"], MARY, 1)

        await BROWSER.deferred(open_tab)
        await tony.leave()

        def write_to_away() -> list[str]:
            page = tabs["mary"].page
            page.wait_for_selector(f"#peers li.away[data-uid='{TONY[1]}']")
            write(tabs["mary"], "for when you are back", (TONY[1],))
            page.wait_for_selector("#messages li.msg.own")
            page.screenshot(path=str(ARTIFACTS / "web-away.png"))
            return page.eval_on_selector_all(
                "#peers li",
                "(lis) => lis.map((li) => li.innerText.replace(/\\s+/g, ' '))",
            )

        peers = await BROWSER.deferred(write_to_away)
        self.assertEqual(len(peers), 2)
        self.assertIn("away", peers[1])
        back, seen = await self.bot(port, TONY, PASSWORDS[TONY[1]])
        message = await seen.next_of("message")
        self.assertEqual(
            (message.text, message.sender_uid, message.history),
            ("for when you are back", MARY[1], True),
        )
        self.assertEqual(tabs["mary"].errors, [])

    async def test_known_users_away_are_offered_on_joining(self) -> None:
        """Needs the server's KNOWN (capability ``known``, branch history)."""
        url, port = await self.history_server()
        tony, _ = await self.bot(port, TONY, PASSWORDS[TONY[1]])
        await tony.leave()
        tabs = self.tabs()

        def open_tab() -> str:
            tabs["mary"] = BROWSER.open_tab(url, LAPTOP)
            join_with_password(tabs["mary"], MARY, 0)
            page = tabs["mary"].page
            page.wait_for_selector(f"#peers li.away[data-uid='{TONY[1]}']")
            return page.inner_text(f"#peers li.away[data-uid='{TONY[1]}'] .peer-name")

        self.assertEqual(await BROWSER.deferred(open_tab), "Tony")

    async def test_history_names_a_departed_sender_by_the_nickname_it_used(
        self,
    ) -> None:
        """Needs the server's UN on replayed messages (branch history)."""
        database = os.path.join(fresh_directory(self), "history.db")
        url, port = await self.serve("--db", database)
        tony, _ = await self.bot(port, TONY)
        tony.send([], "said as Tony")
        await tony.leave()
        await wait_until(lambda: not tony.connected, what="Tony gone")
        tabs = self.tabs()

        def open_tab() -> str:
            tabs["mary"] = BROWSER.open_tab(url, LAPTOP)
            join_in(tabs["mary"], MARY, 0)
            page = tabs["mary"].page
            page.wait_for_selector("#messages li.msg.hist")
            return page.inner_text("#messages li.msg.hist .from")

        self.assertEqual(await BROWSER.deferred(open_tab), "Tony")


class PhoneTests(PageTestCase):
    async def test_the_keyboard_opening_keeps_the_newest_message_in_view(
        self,
    ) -> None:
        url, port = await self.serve()
        tony, _ = await self.bot(port, TONY)
        tabs = self.tabs()

        def open_tab() -> None:
            tabs["mary"] = BROWSER.open_tab(url, PHONE)
            join_in(tabs["mary"], MARY, 1)

        await BROWSER.deferred(open_tab)
        for number in range(30):
            tony.send([], f"message {number}")

        def shrink() -> dict[str, Any]:
            page = tabs["mary"].page
            page.wait_for_function(
                "() => [...document.querySelectorAll('#messages .body')]"
                ".some((b) => b.textContent === 'message 29')"
            )
            page.click("#text")
            # The on-screen keyboard takes the lower half of the screen.
            page.set_viewport_size({"width": 390, "height": 420})
            page.wait_for_timeout(300)
            page.screenshot(path=str(ARTIFACTS / "web-phone-keyboard.png"))
            return page.evaluate(
                """() => {
                  const last = [...document.querySelectorAll('#messages li.msg')].pop();
                  const box = last.getBoundingClientRect();
                  const view = document.getElementById('messages-scroll')
                    .getBoundingClientRect();
                  return {text: last.querySelector('.body').textContent,
                          inView: box.bottom <= view.bottom + 1 && box.top >= view.top};
                }"""
            )

        self.assertEqual(
            await BROWSER.deferred(shrink), {"text": "message 29", "inView": True}
        )

    async def test_a_refused_join_is_said_under_the_form(self) -> None:
        url, port = await self.serve()
        await self.bot(port, MARY)
        tabs = self.tabs()

        def refused() -> dict[str, Any]:
            tabs["other"] = BROWSER.open_tab(url, PHONE)
            page = tabs["other"].page
            page.fill("#nickname", "Mary")
            page.fill("#uid", "someone.else@hku.hk")
            page.click("#join")
            page.wait_for_selector("#join-error:not([hidden])")
            page.screenshot(path=str(ARTIFACTS / "web-phone-refused.png"))
            return page.evaluate(
                """() => {
                  const error = document.getElementById('join-error');
                  const box = error.getBoundingClientRect();
                  return {text: error.textContent,
                          status: document.getElementById('status').textContent,
                          inView: box.top >= 0 && box.bottom <= window.innerHeight
                            && box.left >= 0 && box.right <= window.innerWidth
                            && box.height < 100
                            && document.documentElement.scrollWidth
                               <= window.innerWidth};
                }"""
            )

        shown = await BROWSER.deferred(refused)
        self.assertTrue(shown["text"].startswith("Join refused (NICK_TAKEN): "), shown)
        self.assertEqual((shown["status"], shown["inView"]), ("Join refused", True))


class SameRuleTests(PageTestCase):
    async def test_the_page_matches_refusals_by_the_tk_clients_rule(self) -> None:
        """The cases of tests/client/test_sending.py, run on sending.js."""
        url, _ = await self.serve()
        tabs = self.tabs()

        def cases() -> dict[str, Any]:
            tabs["page"] = BROWSER.open_tab(url, LAPTOP)
            return tabs["page"].page.evaluate(
                """async () => {
                  const { SentMessages, SETTLE_MS } = await import('./sending.js');
                  const me = ['tony@hku.hk', 'Tony'];
                  const unknown = 'not delivered to unknown user ids or nicknames: ';
                  const gone = (n, ids) =>
                    n.refused('UNKNOWN_RECIPIENT', unknown + ids, 0);
                  const lost = (n, at) => n.refused('STORE_UNAVAILABLE', 'x', at);
                  const serial = (r) => (r ? [r.message.serial, r.partial] : null);
                  const a = new SentMessages(me);
                  a.sent(['mary@hku.hk'], 'hi Mary', 0);
                  a.sent(['tony@hku.hk'], 'note to self', 100);
                  const b = new SentMessages(me);
                  b.sent(['mary@hku.hk', 'henry@hku.hk'], 'to you two', 0);
                  b.sent(['henry@hku.hk'], 'to Henry', 100);
                  const c = new SentMessages(me);
                  c.sent(['a, b', 'c'], 'x', 0);
                  const d = new SentMessages(me);
                  d.sent(['mary@hku.hk'], 'before the outage', 0);
                  d.sent(['mary@hku.hk'], 'during it', 500);
                  const e = new SentMessages(me);
                  e.sent(['mary@hku.hk'], 'long ago', 0);
                  return {
                    atOnce: [serial(a.refused('NO_RECIPIENT', 'x', 200)),
                             serial(lost(a, 300))],
                    unknown: [serial(gone(b, 'henry@hku.hk')),
                              serial(gone(b, 'henry@hku.hk'))],
                    commas: serial(gone(c, 'a, b, c')),
                    newest: [serial(lost(d, 600)), d.pending.map((m) => m.serial)],
                    settled: serial(lost(e, SETTLE_MS + 100)),
                  };
                }"""
            )

        self.assertEqual(
            await BROWSER.deferred(cases),
            {
                "atOnce": [[2, False], [1, False]],
                "unknown": [[1, True], [2, False]],
                "commas": [1, False],
                "newest": [[2, False], [1]],
                "settled": None,
            },
        )
