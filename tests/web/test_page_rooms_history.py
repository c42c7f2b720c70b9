"""History per room in the browser client: a room entered shows its replay,
"Load older messages" scrolls back in the room shown (``HISTORY`` with
``ROOM``), and each room keeps whether older messages exist. Real Chromium,
a real loopback server with an SQLite history, ChatClient bots."""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from muca.web.gateway import make_site
from tests.support import browser, start_service
from tests.support.browser import BROWSER, LAPTOP, Tab
from tests.support.client import RecordingObserver
from tests.support.twistd import fresh_directory
from tests.web.test_page import MARY, join_in
from tests.web.test_page_rooms import HENRY, visible_texts

TONY = ("Tony", "tony@hku.hk")


def load_older_shown(tab: Tab) -> bool:
    """Whether the page offers "Load older messages" (browser thread)."""
    return not tab.page.eval_on_selector("#load-older", "(b) => b.hidden")


class RoomsHistoryPageTests(TestCase):
    async def test_load_older_asks_in_the_room_shown(self) -> None:
        database = os.path.join(fresh_directory(self), "history.db")
        (tcp,) = await start_service(
            self,
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--db",
            database,
            "--history-replay",
            "3",
        )
        port = tcp.getHost().port
        url = await browser.listen_site(self, make_site(tcp.factory))
        bots = []
        for who in (HENRY, TONY):
            observer = RecordingObserver()
            bot = ChatClient(reactor, *who, observer)
            self.addCleanup(bot.leave)
            await bot.connect_tcp("127.0.0.1", port)
            await bot.join()
            await bot.enter("dev")
            bots.append((bot, observer))
        (henry, _), (_, tony_heard) = bots
        for n in range(1, 7):
            henry.send([], f"dev {n}", room="dev")
        henry.send([], "general 1")
        # Delivered, so stored.
        await tony_heard.next_of("message", 7)

        tabs: list[Tab] = []
        self.addCleanup(lambda: BROWSER.deferred(lambda: [t.close() for t in tabs]))

        def in_general() -> tuple[list[str], bool]:
            tabs.append(BROWSER.open_tab(url, LAPTOP))
            tab = tabs[0]
            join_in(tab, MARY, 2)
            tab.page.wait_for_function(
                "() => [...document.querySelectorAll('#messages li.msg .body')]"
                ".some((b) => b.textContent === 'general 1')"
            )
            return visible_texts(tab), load_older_shown(tab)

        texts, offered = await BROWSER.deferred(in_general)
        # Her JOIN's replay: the default room's, and nothing older there.
        self.assertEqual((texts, offered), (["general 1"], False))

        def enter_dev() -> tuple[list[str], bool]:
            tab = tabs[0]
            page = tab.page
            page.click("#rooms li[data-room='dev'] button")
            page.wait_for_function(
                "() => document.querySelector('#room-title').textContent === '#dev'"
            )
            page.wait_for_selector("#load-older:not([hidden])")
            return visible_texts(tab), load_older_shown(tab)

        texts, offered = await BROWSER.deferred(enter_dev)
        self.assertEqual((texts, offered), (["dev 4", "dev 5", "dev 6"], True))

        def load_older() -> tuple[list[str], bool]:
            tab = tabs[0]
            page = tab.page
            page.click("#load-older")
            page.wait_for_function(
                "() => [...document.querySelectorAll('#messages li.msg .body')]"
                ".some((b) => b.textContent === 'dev 1')"
            )
            page.wait_for_selector("#load-older[hidden]", state="attached")
            return visible_texts(tab), load_older_shown(tab)

        texts, offered = await BROWSER.deferred(load_older)
        self.assertEqual((texts, offered), ([f"dev {n}" for n in range(1, 7)], False))

        def back_in_general() -> tuple[list[str], bool]:
            tab = tabs[0]
            page = tab.page
            page.click("#rooms li[data-room='general'] button")
            page.wait_for_function(
                "() => document.querySelector('#room-title').textContent === '#general'"
            )
            return visible_texts(tab), load_older_shown(tab)

        self.assertEqual(
            await BROWSER.deferred(back_in_general), (["general 1"], False)
        )
