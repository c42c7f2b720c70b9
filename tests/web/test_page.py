"""The browser client in a real headless Chromium (Playwright, Debian's
``chromium``) against the real server: two browser users and a TCP
``ChatClient`` chat in all three ways, a reload keeps the identity, markup
in a message shows as text; screenshots at laptop and phone size go to
``artifacts/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from muca.client.client import ChatClient
from muca.web.gateway import make_site
from tests.support import browser, start_service
from tests.support.browser import BROWSER, LAPTOP, PHONE, Tab
from tests.support.client import RecordingObserver, wait_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
MARY = ("Mary", "mary@hku.hk")
TONY = ("Tony", "tony@hku.hk")
BOT = ("Bot", "bot@hku.hk")
HOSTILE = (
    "look <script>window.pwned = 1</script><b>bold</b> & "
    '<img src=x onerror="window.pwned = 2">'
)


def join_in(tab: Tab, who: tuple[str, str], others: int) -> None:
    """Fill in the form, press Join, wait until the room shows ``others``
    more people (browser thread)."""
    page = tab.page
    page.fill("#nickname", who[0])
    page.fill("#uid", who[1])
    page.click("#join")
    page.wait_for_selector("#app[data-state='joined']")
    page.wait_for_function(
        f"document.querySelectorAll('#peers li').length === {others + 1}"
    )


def write(tab: Tab, text: str, to: tuple[str, ...] = ()) -> None:
    """Select ``to`` (nobody: everyone), type ``text`` and press Enter."""
    page = tab.page
    if page.is_enabled("#everyone"):
        page.click("#everyone")
    for uid in to:
        page.click(f"#peers li[data-uid='{uid}'] button")
    page.fill("#text", text)
    page.press("#text", "Enter")


def wait_message(tab: Tab, kind: str, text: str) -> dict[str, Any]:
    """Wait for a message of ``kind`` with this text; what the page shows of it."""
    page = tab.page
    handle = page.wait_for_function(
        """([kind, text]) => [...document.querySelectorAll('#messages li.msg.' + kind)]
             .find((li) => li.querySelector('.body').textContent === text) || null""",
        arg=[kind, text],
    )
    return handle.evaluate(
        """(li) => ({from: li.querySelector('.from').textContent,
                     own: li.classList.contains('own'),
                     time: li.querySelector('time').textContent,
                     html: li.querySelector('.body').innerHTML})"""
    )


class PageTests(TestCase):
    async def test_two_browsers_and_a_tcp_client_chat_in_all_three_ways(
        self,
    ) -> None:
        (tcp,) = await start_service(self, "--listen", "tcp:0:interface=127.0.0.1")
        url = await browser.listen_site(self, make_site(tcp.factory))
        observer = RecordingObserver()
        bot = ChatClient(reactor, *BOT, observer)
        self.addCleanup(bot.leave)
        await bot.connect_tcp("127.0.0.1", tcp.getHost().port)
        await bot.join()

        tabs: dict[str, Tab] = {}

        def open_tabs() -> None:
            tabs["mary"] = BROWSER.open_tab(url, LAPTOP)
            tabs["tony"] = BROWSER.open_tab(url, PHONE)
            join_in(tabs["mary"], MARY, 1)
            join_in(tabs["tony"], TONY, 2)

        def close_tabs() -> None:
            for tab in tabs.values():
                tab.close()

        self.addCleanup(lambda: BROWSER.deferred(close_tabs))
        await BROWSER.deferred(open_tabs)
        await wait_until(lambda: len(bot.peers) == 3, what="three in the room")

        # Broadcast from a browser, with markup and a Shift+Enter new line.
        def broadcast() -> tuple[dict[str, Any], dict[str, Any], Any]:
            page = tabs["mary"].page
            page.fill("#text", HOSTILE)
            page.press("#text", "Shift+Enter")
            page.type("#text", "second line")
            page.press("#text", "Enter")
            text = HOSTILE + "\nsecond line"
            seen = wait_message(tabs["tony"], "all", text)
            own = wait_message(tabs["mary"], "all", text)
            injected = tabs["tony"].page.evaluate(
                "[window.pwned, document.querySelectorAll("
                "'#messages b, #messages img, #messages script').length]"
            )
            return seen, own, injected

        seen, own, injected = await BROWSER.deferred(broadcast)
        self.assertEqual(seen["from"], "Mary")
        self.assertFalse(seen["own"])
        self.assertRegex(seen["time"], r"\d{1,2}:\d{2}")
        self.assertTrue(own["own"])
        self.assertEqual(injected, [None, 0])
        self.assertIn("&lt;script&gt;", seen["html"])
        message = await observer.next_of("message")
        self.assertEqual(
            (message.kind, message.sender_uid, message.text),
            ("ALL", MARY[1], HOSTILE + "\nsecond line"),
        )

        # Private from a browser to the other browser; the bot does not get it.
        def private() -> dict[str, Any]:
            write(tabs["tony"], "psst, Mary", (MARY[1],))
            return wait_message(tabs["mary"], "private", "psst, Mary")

        self.assertEqual((await BROWSER.deferred(private))["from"], "Tony")

        # Group from the TCP client to both browsers.
        bot.send([MARY[1], TONY[1]], "beep to you two")

        def group_from_bot() -> list[str]:
            return [
                wait_message(tabs[who], "group", "beep to you two")["from"]
                for who in ("mary", "tony")
            ]

        self.assertEqual(await BROWSER.deferred(group_from_bot), ["Bot", "Bot"])

        # Group from a browser to the bot and the other browser; private to the bot.
        def group_and_private_from_mary() -> dict[str, Any]:
            write(tabs["mary"], "hi Tony and Bot", (TONY[1], BOT[1]))
            write(tabs["mary"], "just for Bot", (BOT[1],))
            return wait_message(tabs["tony"], "group", "hi Tony and Bot")

        self.assertEqual(
            (await BROWSER.deferred(group_and_private_from_mary))["from"], "Mary"
        )
        await observer.next_of("message", 3)
        self.assertEqual(
            [(m.kind, m.sender_uid, m.text) for m in observer.of("message")],
            [
                ("ALL", MARY[1], HOSTILE + "\nsecond line"),
                ("GROUP", MARY[1], "hi Tony and Bot"),
                ("PRIVATE", MARY[1], "just for Bot"),
            ],
        )

        # Screenshots of a conversation, at both sizes.
        def screenshots() -> list[str]:
            ARTIFACTS.mkdir(exist_ok=True)
            tabs["mary"].page.screenshot(path=str(ARTIFACTS / "web-laptop.png"))
            tabs["tony"].page.screenshot(path=str(ARTIFACTS / "web-phone.png"))
            return [*tabs["mary"].errors, *tabs["tony"].errors]

        self.assertEqual(await BROWSER.deferred(screenshots), [])
        for name in ("web-laptop.png", "web-phone.png"):
            self.assertGreater((ARTIFACTS / name).stat().st_size, 10_000)

        # A reload keeps the identity: the form is filled in, Join works.
        def reload() -> tuple[str, str]:
            page = tabs["mary"].page
            page.reload()
            filled = page.input_value("#nickname"), page.input_value("#uid")
            page.click("#join")
            page.wait_for_selector("#app[data-state='joined']")
            return filled

        self.assertEqual(await BROWSER.deferred(reload), MARY)
