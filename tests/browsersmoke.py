"""Smoke-check a running MUCA web listener with headless Chromium.

    python -m tests.browsersmoke http://127.0.0.1:8080/ [--join NICK UID]
                                 [--shots DIR]

Opens the page at laptop and phone sizes and checks that it loads under its
CSP with no console error, that the controls tests rely on exist and that
Join is enabled only once a nickname and a user id are filled in.  With
``--join`` it also joins (over the real ``/ws``) and waits for the room.
``--shots`` saves one screenshot per size.  Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.browsersupport import BROWSER, LAPTOP, PHONE, skip_reason

#: Elements the page must have (see the browser client's README notes).
REQUIRED = [
    "#nickname",
    "#uid",
    "#password",
    "#join",
    "#leave",
    "#peers",
    "#messages",
    "#load-older",
    "#recipients",
    "#text",
    "#send",
    "#console",
    "#status",
]


def check(
    url: str, viewport: dict[str, int], name: str, args: argparse.Namespace
) -> list[str]:
    """Run the checks at one viewport; the list of failures."""
    failures: list[str] = []
    with BROWSER.tab(url, viewport) as tab:
        page = tab.page
        page.evaluate("localStorage.clear()")
        page.reload()
        for selector in REQUIRED:
            if page.query_selector(selector) is None:
                failures.append(f"{name}: {selector} is missing")
        if page.title() != "MUCA chat":
            failures.append(f"{name}: title is {page.title()!r}")
        if not page.is_disabled("#join"):
            failures.append(f"{name}: Join is enabled with empty fields")
        if not page.inner_text("#console").strip():
            failures.append(f"{name}: no hint in the console")
        if args.join:
            nick, uid = args.join
            suffix = "" if name == "laptop" else "-phone"
            page.fill("#nickname", nick + suffix)
            page.fill("#uid", uid + suffix)
            if page.is_disabled("#join"):
                failures.append(f"{name}: Join stays disabled with both fields")
            page.click("#join")
            try:
                page.wait_for_selector("#app[data-state='joined']")
                page.wait_for_selector("#peers li")
            except Exception as exc:  # a Playwright timeout, reported below
                failures.append(f"{name}: did not join: {exc}")
            print(
                f"{name}: console:\n  "
                + page.inner_text("#console").replace("\n", "\n  ")
            )
        if args.shots:
            Path(args.shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(args.shots) / f"{name}.png"))
        if args.join:
            page.click("#leave")
        failures.extend(f"{name}: {error}" for error in tab.errors)
    return failures


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--join", nargs=2, metavar=("NICK", "UID"))
    parser.add_argument("--shots", metavar="DIR")
    args = parser.parse_args(argv)
    reason = skip_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    failures: list[str] = []
    for name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
        failures += BROWSER.call(check, args.url, viewport, name, args)
    BROWSER.close()
    for failure in failures:
        print("FAIL", failure)
    print("OK" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
