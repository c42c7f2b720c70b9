"""Accounts in the browser client, in real Chromium, against a real
``twistd -n muca --auth db --register invite --web`` (SQLite) and an
invitation from ``muca-admin invite create``: the teacher's link
``/?invite=CODE`` opens "Create account" with the code filled in; a weak
password and two that differ are said beside the form; the account made
joins; "Change password" refuses a wrong current one and changes it, and
the page joins with the new one. Screenshots at laptop and phone size go to
artifacts/ (web-accounts-laptop.png, web-accounts-phone.png)."""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import TestCase

from tests.support import OKAY
from tests.support.accounts import AccountsCase, SQLiteAccounts
from tests.support.browser import BROWSER, LAPTOP, PHONE, Tab
from tests.support.twistd import start_twistd
from tests.web.test_page import ARTIFACTS

SECRET = "correct horse battery"
NEW = "a better one, longer"
RULE = (
    "a password needs at least 8 characters (at most 1024) and must not be the user id"
)


def message(tab: Tab, which: str) -> str:
    """The line beside a form once it says more than "…ing" (browser thread)."""
    selector = f"#{which}-message"
    tab.page.wait_for_function(
        f"""() => {{ const m = document.querySelector('{selector}');
                     return !m.hidden && !m.textContent.endsWith('…'); }}"""
    )
    return tab.page.text_content(selector) or ""


def register(tab: Tab, uid: str, password: str, again: str | None = None) -> str:
    """Fill "Create account" and press it: what is said beside it."""
    page = tab.page
    page.fill("#reg-uid", uid)
    page.fill("#reg-password", password)
    page.fill("#reg-password2", password if again is None else again)
    page.evaluate(
        "() => { document.querySelector('#register-message').hidden = true; }"
    )
    page.click("#register")
    return message(tab, "register")


def change(tab: Tab, old: str, new: str) -> str:
    page = tab.page
    page.fill("#old-password", old)
    page.fill("#new-password", new)
    page.fill("#new-password2", new)
    page.evaluate(
        "() => { document.querySelector('#password-message').hidden = true; }"
    )
    page.click("#change-password")
    return message(tab, "password")


class AccountsPageTests(SQLiteAccounts, AccountsCase, TestCase):
    async def setUp(self) -> None:
        SQLiteAccounts.setUp(self)
        self.twistd = await start_twistd(
            self,
            "--auth", "db", "--db", self.db, "--register", "invite",
            "--web", "tcp:0:interface=127.0.0.1",
        )  # fmt: skip
        found = await self.twistd.process.wait_for(
            r"muca: browser client on (http://\S+)"
        )
        self.url = found.group(1)
        self.tabs: list[Tab] = []
        self.addCleanup(
            lambda: BROWSER.deferred(lambda: [tab.close() for tab in self.tabs])
        )

    def open(self, path: str, viewport: dict[str, int]) -> Tab:
        tab = BROWSER.open_tab(self.url.rstrip("/") + path, viewport)
        self.tabs.append(tab)
        return tab

    async def test_an_invitation_link_makes_an_account_that_joins(self) -> None:
        code = (await self.admin("invite", "create", "--uses", "2")).strip()

        def create() -> dict[str, Any]:
            tab = self.open(f"/?invite={code}", LAPTOP)
            page = tab.page
            page.wait_for_selector("#register-panel:not([hidden])")
            seen: dict[str, Any] = {"invite": page.input_value("#reg-invite")}
            seen["differ"] = register(tab, "ann@hku.hk", SECRET, "something else")
            seen["weak"] = register(tab, "ann@hku.hk", "short")
            seen["bad code"] = None
            page.fill("#reg-invite", "not-a-code")
            seen["bad code"] = register(tab, "ann@hku.hk", SECRET)
            page.fill("#reg-invite", code)
            seen["created"] = register(tab, "ann@hku.hk", SECRET)
            seen["form"] = [page.input_value("#uid"), page.input_value("#password")]
            seen["password shown"] = page.is_visible("#password")
            page.fill("#nickname", "Ann")
            page.screenshot(path=str(ARTIFACTS / "web-accounts-laptop.png"))
            page.click("#join")
            page.wait_for_selector("#app[data-state='joined']")
            seen["create hidden"] = page.is_hidden("#open-register")
            page.click("#leave")
            page.wait_for_selector("#app[data-state='idle']")
            # The same link on a phone: the form first, the code in it.
            phone = self.open(f"/?invite={code}", PHONE)
            phone.page.wait_for_selector("#register-panel:not([hidden])")
            seen["phone invite"] = phone.page.input_value("#reg-invite")
            phone.page.fill("#reg-uid", "cat@hku.hk")
            phone.page.screenshot(path=str(ARTIFACTS / "web-accounts-invite-phone.png"))
            seen["errors"] = tab.errors + phone.errors
            return seen

        os.makedirs(ARTIFACTS, exist_ok=True)
        seen = await BROWSER.deferred(create)
        self.assertEqual(
            seen,
            {
                "invite": code,
                "differ": "The two passwords differ: type the same one twice.",
                "weak": f"Account not created: too short: {RULE} (WEAK_PASSWORD).",
                "bad code": "Account not created: this invitation code is unknown,"
                " used up, expired or revoked (BAD_INVITE).",
                "created": "Account created for ann@hku.hk: you can join with it."
                " Enter a nickname and press Join.",
                "form": ["ann@hku.hk", SECRET],
                "password shown": True,
                "create hidden": True,
                "phone invite": code,
                "errors": [],
            },
        )
        self.assertEqual(await self.login(self.twistd.port, "ann@hku.hk", SECRET), OKAY)

    async def test_a_password_changed_in_the_page_is_the_one_that_joins(
        self,
    ) -> None:
        await self.admin("user", "add", "bob@hku.hk", stdin=SECRET + "\n")

        def change_it() -> dict[str, Any]:
            tab = self.open("/", PHONE)
            page = tab.page
            seen: dict[str, Any] = {"change shown": page.is_visible("#open-password")}
            page.fill("#nickname", "Bob")
            page.fill("#uid", "bob@hku.hk")
            page.click("#join")
            page.wait_for_selector("#password-field:not([hidden])")
            page.fill("#password", SECRET)
            page.click("#join")
            page.wait_for_selector("#app[data-state='joined']")
            page.click("#open-password")
            page.wait_for_selector("#password-panel:not([hidden])")
            seen["wrong"] = change(tab, "not my password", NEW)
            seen["weak"] = change(tab, SECRET, "bob@hku.hk")
            seen["changed"] = change(tab, SECRET, NEW)
            seen["button enabled"] = page.is_enabled("#change-password")
            page.screenshot(path=str(ARTIFACTS / "web-accounts-phone.png"))
            page.click("#leave")
            page.wait_for_selector("#app[data-state='idle']")
            page.click("#join")  # the form holds the new password now
            page.wait_for_selector("#app[data-state='joined']")
            page.click("#leave")
            page.wait_for_selector("#app[data-state='idle']")
            seen["errors"] = tab.errors
            return seen

        os.makedirs(ARTIFACTS, exist_ok=True)
        seen = await BROWSER.deferred(change_it)
        self.assertEqual(
            seen,
            {
                "change shown": False,
                "wrong": "Password not changed: OLD is not your password"
                " (AUTH_FAILED).",
                "weak": f"Password not changed: it is the user id: {RULE}"
                " (WEAK_PASSWORD).",
                "changed": "Password changed: join with the new one from now on.",
                "button enabled": True,
                "errors": [],
            },
        )
        self.assertEqual(await self.login(self.twistd.port, "bob@hku.hk", NEW), OKAY)
        self.assertNotEqual(
            await self.login(self.twistd.port, "bob@hku.hk", SECRET), OKAY
        )
