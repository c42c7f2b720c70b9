"""Headless Chromium for the browser tests: one browser per test process.

Playwright's sync API binds every object it hands out (browser, context,
page) to the thread that started it, and it refuses to run inside a running
asyncio loop.  Trial's reactor is not asyncio, but ``deferToThread`` is no
answer: the reactor's thread pool may run two calls on two different
threads.  So all Playwright work runs on one dedicated thread that this
module owns, and a test hands it whole scenarios as plain functions:

    from tests.support import browser

    class PageTests(TestCase):
        async def test_join(self) -> None:
            url = ...  # the gateway, listening in this process's reactor
            def scenario() -> str:
                with browser.BROWSER.tab(url) as tab:
                    tab.page.fill("#nickname", "Mary")
                    ...
                    return tab.page.inner_text("#console")
            console = await browser.BROWSER.deferred(scenario)

The scenario blocks the browser thread, never the reactor, so the server
under test keeps answering the page.  A tab may also outlive one call (open
it in one ``deferred`` call, drive it in the next while a TCP bot acts in
the reactor between them), as long as it is only ever touched from inside
functions given to ``deferred``/``call``.  ``call`` is the blocking twin for
code that runs no reactor.

Chromium starts on first use, once per process, and closes at exit.  It is
Debian's ``/usr/bin/chromium``: ``playwright install`` needs the internet.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.internet import defer, endpoints
from twisted.internet.task import deferLater
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

#: Debian's Chromium; override with MUCA_CHROMIUM.
CHROMIUM = os.environ.get("MUCA_CHROMIUM", "/usr/bin/chromium")

#: No sandbox (root in containers), no GPU, and nothing that calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: Viewports the page is checked at.
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

#: Milliseconds Playwright waits for a selector or an action by default.
TIMEOUT_MS = 10_000

T = TypeVar("T")


async def listen_site(testcase: TestCase, site: Site) -> str:
    """Serve ``site`` on a free loopback port for one test; its ``http://`` URL.

    At cleanup it stops listening and ends every connection the browser
    still holds (HTTP keep-alive, WebSockets), so trial finds a clean
    reactor.  It also cancels the idle timer of every channel: a
    ``twisted.web`` channel upgraded to a WebSocket no longer reaches
    ``HTTPChannel.connectionLost``, so its timer would outlive the test."""
    from twisted.internet import reactor

    tracker = WrappingFactory(site)
    channels: list[Any] = []  # every connection's HTTP channel, closed or not
    build = tracker.buildProtocol

    def build_and_remember(addr: Any) -> Any:
        wrapper = build(addr)
        if wrapper is not None:
            channels.append(wrapper.wrappedProtocol)
        return wrapper

    tracker.buildProtocol = build_and_remember  # type: ignore[method-assign]
    port = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        tracker
    )

    async def cleanup() -> None:
        await port.stopListening()
        for wrapper in list(tracker.protocols):
            wrapper.transport.abortConnection()
        for _ in range(100):
            if not tracker.protocols:
                break
            await deferLater(reactor, 0.02)
        for channel in channels:
            channel = getattr(channel, "_channel", channel)
            if hasattr(channel, "setTimeout"):
                channel.setTimeout(None)

    testcase.addCleanup(lambda: defer.ensureDeferred(cleanup()))
    return f"http://127.0.0.1:{port.getHost().port}/"


@dataclass
class Tab:
    """One page in its own browser context (own cookies and localStorage).

    ``errors`` collects console errors, CSP violations and uncaught
    exceptions, so a test can assert that the page ran cleanly."""

    page: Any
    context: Any
    errors: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Close the page and its context (browser thread only)."""
        self.context.close()


class Browser:
    """A Chromium driven from one dedicated thread; see the module docstring."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.Queue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._playwright: Any = None
        self._browser: Any = None

    # -- running work on the browser thread --------------------------------

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on the browser thread; a Future of it."""
        with self._lock:
            if self._thread is None:
                # Daemon, so a wedged browser cannot hang the interpreter's
                # exit; the atexit hook below still closes it cleanly first.
                self._thread = threading.Thread(
                    target=self._serve, name="playwright", daemon=True
                )
                self._thread.start()
                atexit.register(self.close)
        future: Future[T] = Future()
        self._jobs.put((lambda: fn(*args, **kwargs), future))
        return future

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the browser thread and wait for it (no reactor)."""
        return self.submit(fn, *args, **kwargs).result()

    def deferred(
        self, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> defer.Deferred[T]:
        """Run ``fn`` on the browser thread; a Deferred that fires in the
        reactor thread with its result or failure."""
        from twisted.internet import reactor

        d: defer.Deferred[T] = defer.Deferred()

        def done(future: Future[T]) -> None:
            exc = future.exception()
            if exc is not None:
                reactor.callFromThread(d.errback, exc)
            else:
                reactor.callFromThread(d.callback, future.result())

        self.submit(fn, *args, **kwargs).add_done_callback(done)
        return d

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                self._shutdown()
                return
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, not lost
                future.set_exception(exc)

    # -- the browser itself (browser thread only) ----------------------------

    def browser(self) -> Any:
        """The launched Chromium, started on first use (browser thread only)."""
        if self._browser is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        return self._browser

    def open_tab(
        self, url: str | None = None, viewport: dict[str, int] = LAPTOP
    ) -> Tab:
        """A fresh context and page, at ``url`` when given (browser thread only).

        A phone-sized viewport also gets touch and mobile emulation."""
        phone = viewport["width"] < 600
        context = self.browser().new_context(
            viewport=viewport, is_mobile=phone, has_touch=phone
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        tab = Tab(page=page, context=context)

        def on_console(message: Any) -> None:
            if message.type == "error":
                tab.errors.append(f"console: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
        if url is not None:
            page.goto(url)
        return tab

    @contextmanager
    def tab(
        self, url: str | None = None, viewport: dict[str, int] = LAPTOP
    ) -> Iterator[Tab]:
        """``open_tab`` as a context manager that closes it (browser thread)."""
        tab = self.open_tab(url, viewport)
        try:
            yield tab
        finally:
            tab.close()

    def _shutdown(self) -> None:
        try:
            if self._browser is not None:
                self._browser.close()
        finally:
            self._browser = None
            if self._playwright is not None:
                self._playwright.stop()
                self._playwright = None

    def close(self, timeout: float = 10.0) -> None:
        """Close Chromium and stop the browser thread (from any other thread)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._jobs.put(None)
            thread.join(timeout)


#: The one browser of this test process.
BROWSER = Browser()
