"""The browser client's search box, in real Chromium against a real
loopback server with an SQLite history: the results with room, sender,
time and the matching words marked, a click opening the message's room and
flashing the message, a bad query as one readable line."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from muca.web.gateway import make_site
from tests.support import browser, start_service
from tests.support.browser import BROWSER, LAPTOP, Tab
from tests.support.client import RecordingObserver
from tests.support.twistd import fresh_directory
from tests.web.test_page import MARY, join_in

HENRY = ("Henry", "henry@hku.hk")


class SearchPageTests(TestCase):
    async def test_search_box_results_highlight_and_jump(self) -> None:
        db = os.path.join(fresh_directory(self), "muca.db")
        (tcp,) = await start_service(
            self, "--listen", "tcp:0:interface=127.0.0.1", "--db", db
        )
        url = await browser.listen_site(self, make_site(tcp.factory))
        observer = RecordingObserver()
        henry = ChatClient(reactor, *HENRY, observer)
        self.addCleanup(henry.leave)
        await henry.connect_tcp("127.0.0.1", tcp.getHost().port)
        await henry.join()
        await henry.enter("ops")
        said = [
            (None, "Meet at the Café at noon"),
            ("ops", "deploy plan for the cafe app"),
            (None, "lunch later"),
        ]
        tabs: dict[str, Tab] = {}
        self.addCleanup(
            lambda: BROWSER.deferred(lambda: [t.close() for t in tabs.values()])
        )

        def join() -> None:
            tabs["mary"] = BROWSER.open_tab(url, LAPTOP)
            join_in(tabs["mary"], MARY, 1)

        await BROWSER.deferred(join)
        for room, text in said:
            henry.send([], text, room=room)
        # Stored once Henry's own search finds the last.
        for _ in range(100):
            if (await henry.search("lunch")).messages:
                break
            await deferLater(reactor, 0.05)

        def search(query: str) -> dict[str, Any]:
            page = tabs["mary"].page
            page.fill("#search-q", query)
            page.press("#search-q", "Enter")
            page.wait_for_function(
                "() => !document.querySelector('#search-note')"
                ".textContent.startsWith('Searching')"
            )
            return page.evaluate(
                """() => ({
                  note: document.querySelector('#search-note').textContent,
                  error: document.querySelector('#search-note')
                    .classList.contains('error'),
                  hits: [...document.querySelectorAll('#search-results li')]
                  .map((li) => ({
                    room: li.querySelector('.search-room').textContent,
                    from: li.querySelector('.search-from').textContent,
                    time: li.querySelector('.search-time').textContent,
                    text: li.querySelector('.search-text').textContent,
                    marks: [...li.querySelectorAll('mark')].map((m) => m.textContent),
                  })),
                })"""
            )

        shown = await BROWSER.deferred(search, "CAFE")
        # Mary is not in #ops: only #general's message is hers to find.
        self.assertEqual(shown["note"], "1 found for CAFE, newest first.")
        self.assertEqual(len(shown["hits"]), 1)
        hit = shown["hits"][0]
        self.assertEqual(
            (hit["room"], hit["from"], hit["text"], hit["marks"]),
            ("#general", "Henry", "Meet at the Café at noon", ["Café"]),
        )
        self.assertRegex(hit["time"], r"^\d\d:\d\d$")

        def open_hit() -> tuple[str, bool]:
            page = tabs["mary"].page
            page.click("#search-results li button")
            page.wait_for_selector("#messages li.msg.found")
            return (
                page.inner_text("#messages li.msg.found .body"),
                page.evaluate(
                    "() => document.querySelector('#rooms li.current')"
                    "?.dataset.room ?? ''"
                )
                == "general",
            )

        text, in_general = await BROWSER.deferred(open_hit)
        self.assertEqual(text, "Meet at the Café at noon")
        self.assertTrue(in_general)

        shown = await BROWSER.deferred(search, "noon* lunch")
        self.assertEqual(shown["note"], "Nothing found for noon* lunch.")
        shown = await BROWSER.deferred(search, '"unclosed')
        self.assertTrue(shown["error"])
        self.assertEqual(
            shown["note"], 'Cannot search: a quote (") is not closed (BAD_QUERY)'
        )
        self.assertEqual(shown["hits"], [])
