"""Rooms in the browser client: the room list from ROOMS, a room made from
the "new room" entry, a message in it reaching only its members, entering
by a click, the topic and roster of the room shown, a refusal as a readable
line; and on a cluster, the rooms of every node. Real Chromium, a real
loopback server or nodes on redis-server, a ChatClient bot."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from muca.web.gateway import make_site
from tests.cluster.support import start_node
from tests.support import browser, start_service
from tests.support.browser import BROWSER, LAPTOP, PHONE, Tab
from tests.support.client import RecordingObserver, settle, wait_until
from tests.support.redis import free_port, start_redis
from tests.web.test_page import ARTIFACTS, MARY, TONY, join_in, wait_message

HENRY = ("Henry", "henry@hku.hk")


def rooms_shown(tab: Tab) -> list[dict[str, Any]]:
    """The room list as the page shows it (browser thread)."""
    return tab.page.eval_on_selector_all(
        "#rooms li:not(.direct)",
        """(items) => items.map((li) => ({
             name: li.querySelector('.room-name').textContent,
             topic: li.querySelector('.room-topic-line')?.textContent ?? '',
             count: li.querySelector('.room-count').textContent,
             in: li.classList.contains('in'),
             current: li.classList.contains('current')}))""",
    )


def visible_texts(tab: Tab) -> list[str]:
    return tab.page.eval_on_selector_all(
        "#messages li.msg:not([hidden]) .body", "(b) => b.map((x) => x.textContent)"
    )


class RoomsPageTests(TestCase):
    async def test_a_room_made_in_the_page_and_its_message_for_members_only(
        self,
    ) -> None:
        (tcp,) = await start_service(self, "--listen", "tcp:0:interface=127.0.0.1")
        url = await browser.listen_site(self, make_site(tcp.factory))
        observer = RecordingObserver()
        henry = ChatClient(reactor, *HENRY, observer)
        self.addCleanup(henry.leave)
        await henry.connect_tcp("127.0.0.1", tcp.getHost().port)
        await henry.join()
        await henry.enter("ops")
        henry.set_room("ops", topic="deploys on Friday")

        tabs: dict[str, Tab] = {}

        def close_tabs() -> None:
            for tab in tabs.values():
                tab.close()

        self.addCleanup(lambda: BROWSER.deferred(close_tabs))

        def open_tabs() -> list[dict[str, Any]]:
            tabs["mary"] = BROWSER.open_tab(url, LAPTOP)
            tabs["tony"] = BROWSER.open_tab(url, PHONE)
            join_in(tabs["mary"], MARY, 1)
            join_in(tabs["tony"], TONY, 2)
            page = tabs["mary"].page
            page.wait_for_selector("#rooms li[data-room='ops'] .room-topic-line")
            # Mary makes #dev from the "new room" entry.
            page.fill("#room-name", "#Dev")
            page.press("#room-name", "Enter")
            page.wait_for_selector("#rooms li.current[data-room='dev']")
            page.wait_for_function(
                "() => document.querySelector('#room-title').textContent === '#dev'"
            )
            return rooms_shown(tabs["mary"])

        mary_rooms = await BROWSER.deferred(open_tabs)
        self.assertEqual(
            mary_rooms,
            [
                {"name": "#general", "topic": "", "count": "3", "in": True,
                 "current": False},
                {"name": "#ops", "topic": "deploys on Friday", "count": "1",
                 "in": False, "current": False},
                {"name": "#dev", "topic": "", "count": "1", "in": True,
                 "current": True},
            ],
        )  # fmt: skip
        await henry.enter("dev")

        def write_in_dev() -> tuple[list[str], list[str]]:
            page = tabs["mary"].page
            page.wait_for_function(
                "() => document.querySelectorAll('#peers li').length === 2"
            )
            people = page.eval_on_selector_all(
                "#peers .peer-name", "(n) => n.map((x) => x.textContent)"
            )
            page.fill("#text", "build is red")
            page.press("#text", "Enter")
            own = wait_message(tabs["mary"], "all", "build is red")
            kind = page.inner_text("#messages li.msg.own .kind")
            return people, [own["from"], kind]

        people, own = await BROWSER.deferred(write_in_dev)
        self.assertEqual(people, ["Mary", "Henry"])
        self.assertEqual(own, ["You", "in #dev"])
        message = await observer.next_of("message")
        self.assertEqual((message.room, message.text), ("dev", "build is red"))
        await settle()

        def tony_sees() -> tuple[list[str], list[dict[str, Any]]]:
            page = tabs["tony"].page
            page.wait_for_selector("#rooms li[data-room='dev'] .room-count")
            page.wait_for_function(
                "() => document.querySelector("
                "\"#rooms li[data-room='dev'] .room-count\").textContent === '2'"
            )
            return visible_texts(tabs["tony"]), rooms_shown(tabs["tony"])

        texts, tony_rooms = await BROWSER.deferred(tony_sees)
        self.assertNotIn("build is red", texts)
        self.assertEqual(
            [(r["name"], r["count"], r["in"]) for r in tony_rooms],
            [("#general", "3", True), ("#ops", "1", False), ("#dev", "2", False)],
        )

        # Back in #general, Mary sees its messages and not #dev's; the
        # unread badge counts #dev's new one.
        def general_then_badge() -> tuple[list[str], str, str]:
            page = tabs["mary"].page
            page.click("#rooms li[data-room='general'] button")
            page.wait_for_function(
                "() => document.querySelector('#room-title').textContent === '#general'"
            )
            return visible_texts(tabs["mary"]), "", page.inner_text("#room-topic")

        texts, _, topic = await BROWSER.deferred(general_then_badge)
        self.assertNotIn("build is red", texts)
        self.assertEqual(topic, "No topic")
        henry.send([], "tests pass now", room="dev")

        def badge_and_refusal() -> tuple[str, str, list[str]]:
            page = tabs["mary"].page
            badge = page.wait_for_selector("#rooms li[data-room='dev'] .badge")
            count = badge.inner_text()
            # A name the server would refuse: one readable line.
            page.fill("#room-name", "no room!")
            page.press("#room-name", "Enter")
            error = page.wait_for_selector("#room-error:not([hidden])").inner_text()
            # Entering #ops by a click: its topic shown over its messages.
            page.click("#rooms li[data-room='ops'] button")
            page.wait_for_function(
                "() => document.querySelector('#room-title').textContent === '#ops'"
            )
            page.wait_for_function(
                "() => document.querySelectorAll('#peers li').length === 2"
            )
            page.screenshot(path=str(ARTIFACTS / "web-rooms-laptop.png"))
            tabs["tony"].page.screenshot(path=str(ARTIFACTS / "web-rooms-phone.png"))
            return count, error, [page.inner_text("#room-topic")]

        count, error, topic = await BROWSER.deferred(badge_and_refusal)
        self.assertEqual(count, "1")
        self.assertEqual(
            error,
            '"no room!" is no room name: 1 to 32 characters of a-z, 0-9, - and _.',
        )
        self.assertEqual(topic, ["deploys on Friday"])
        await wait_until(lambda: len(henry.room_peers("ops")) == 2, what="Mary in ops")

        # A refusal from the server: leaving a room twice (Henry's page-less
        # exit first makes the server the judge) is one readable line.
        def leave_dev_twice() -> str:
            page = tabs["mary"].page
            page.click("#rooms li[data-room='dev'] button")
            page.wait_for_function(
                "() => document.querySelector('#room-title').textContent === '#dev'"
            )
            page.evaluate(
                "() => { window.muca.session.exit('dev');"
                " window.muca.session.exit('dev'); }"
            )
            return page.wait_for_selector("#room-error:not([hidden])").inner_text()

        self.assertEqual(
            await BROWSER.deferred(leave_dev_twice),
            "Cannot leave the room: you are not in the room 'dev' (NOT_IN_ROOM)",
        )


class ClusterRoomsPageTests(TestCase):
    async def test_on_a_cluster_the_page_has_the_rooms_of_every_node(self) -> None:
        redis = start_redis(self)
        one = await start_node(self, redis)
        web = free_port()
        await start_node(self, redis, "--web", f"tcp:{web}:interface=127.0.0.1")
        url = f"http://127.0.0.1:{web}/"
        observer = RecordingObserver()
        henry = ChatClient(reactor, *HENRY, observer, timeout=10.0)
        self.addCleanup(henry.leave)
        await henry.connect_tcp("127.0.0.1", one.port)
        await henry.join()
        # Made on node one, with its topic; the page is on node two.
        await henry.enter("ops")
        henry.set_room("ops", topic="deploys on Friday")
        tabs: dict[str, Tab] = {}

        def close_tabs() -> None:
            for tab in tabs.values():
                tab.close()

        self.addCleanup(lambda: BROWSER.deferred(close_tabs))

        def join_and_enter() -> tuple[list[dict[str, Any]], list[str], str]:
            tabs["mary"] = BROWSER.open_tab(url, LAPTOP)
            join_in(tabs["mary"], MARY, 1)
            page = tabs["mary"].page
            page.wait_for_selector("#rooms li[data-room='ops'] .room-topic-line")
            page.click("#rooms li[data-room='ops'] button")
            page.wait_for_function(
                "() => document.querySelector('#room-title').textContent === '#ops'"
            )
            page.wait_for_function(
                "() => document.querySelectorAll('#peers li').length === 2"
            )
            people = page.eval_on_selector_all(
                "#peers .peer-name", "(n) => n.map((x) => x.textContent)"
            )
            page.fill("#text", "on my way")
            page.press("#text", "Enter")
            wait_message(tabs["mary"], "all", "on my way")
            lines = page.eval_on_selector_all(
                "#console li.error .text", "(l) => l.map((x) => x.textContent)"
            )
            return rooms_shown(tabs["mary"]), people, " ".join(lines)

        rooms, people, errors = await BROWSER.deferred(join_and_enter)
        self.assertEqual(
            rooms,
            [
                {"name": "#general", "topic": "", "count": "2", "in": True,
                 "current": False},
                {"name": "#ops", "topic": "deploys on Friday", "count": "2",
                 "in": True, "current": True},
            ],
        )  # fmt: skip
        self.assertEqual((people, errors), (["Henry", "Mary"], ""))
        message = await observer.next_of("message")
        self.assertEqual((message.text, message.room), ("on my way", "ops"))
        self.assertTrue(henry.rooms_available)
