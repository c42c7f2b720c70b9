"""The SQLite store on a real frozen file system (``fsfreeze``, a loop
mount; needs root): appending blocks no caller, what waits for the disk is
bounded, what waits is refused once a write has taken too long, and the
write under way is stored when the disk thaws."""

from __future__ import annotations

import os
import threading

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from muca.store.sqlite import SQLiteStore
from tests.store.support import ids, message
from tests.support import until
from tests.support.disk import freeze, loop_mount, thaw

#: Seconds after which a watchdog thaws the disk whatever the test does (a
#: store that wrote on the caller's thread would block it until then).
WATCHDOG = 10.0


def outcome(d: Deferred[None]) -> list[str]:
    """A list that gets "stored" or the error's text once ``d`` fires."""
    got: list[str] = []

    def failed(failure: Failure) -> None:
        got.append(failure.getErrorMessage())

    d.addCallbacks(lambda _: got.append("stored"), failed)
    return got


class FrozenSpoolTests(TestCase):
    async def test_a_frozen_disk_blocks_no_caller_and_bounds_what_waits(
        self,
    ) -> None:
        mountpoint = loop_mount(self)
        path = os.path.join(mountpoint, "muca.db")
        store = SQLiteStore(path, stall_seconds=1.0, wait_bytes=4096)
        await store.open()
        self.addCleanup(store.close)
        await store.append([message(1)])

        freeze(self, mountpoint)
        watchdog_thawed = threading.Event()

        def watchdog_thaw() -> None:
            watchdog_thawed.set()
            thaw(mountpoint)

        watchdog = threading.Timer(WATCHDOG, watchdog_thaw)
        watchdog.start()
        self.addCleanup(watchdog.cancel)
        first = outcome(store.append([message(2)]))  # on its way to the disk
        # About 640 bytes each: six wait, the four past 4096 bytes are refused.
        waiting = [
            outcome(store.append([message(i, text="x" * 500)])) for i in range(3, 13)
        ]
        # Back while the disk is still frozen: no append waited for it.
        self.assertFalse(watchdog_thawed.is_set())
        behind = (
            f"message database {path}: the disk is behind, too many messages"
            " wait for it"
        )
        self.assertEqual(waiting[6:], [[behind]] * 4)
        self.assertEqual(waiting[:6], [[]] * 6)

        # The write under way has taken a second: what waits is refused.
        stalled = f"message database {path}: the disk has taken no write for 1 s"
        await until(lambda: all(waiting[:6]), 5.0, "the refusals")
        self.assertEqual(waiting[:6], [[stalled]] * 6)
        self.assertEqual(store.unavailable(), stalled)
        self.assertEqual(outcome(store.append([message(13)])), [stalled])
        self.assertEqual(first, [])
        self.assertFalse(watchdog_thawed.is_set())  # refused, not waited for

        thaw(mountpoint)
        await until(lambda: first, 5.0, "the first append")
        self.assertEqual(first, ["stored"])
        self.assertIsNone(store.unavailable())
        await store.append([message(14)])
        await store.close()
        again = SQLiteStore(path)
        await again.open()
        self.addCleanup(again.close)
        self.assertEqual(ids(await again.latest(None, False, 100)), [1, 2, 14])
