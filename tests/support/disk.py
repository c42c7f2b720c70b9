"""Real disk faults for tests: a small ext4 file system in an image file,
loop-mounted (read-write or read-only), frozen with ``fsfreeze`` as backup
snapshots do.  Needs root; every mount is thawed and unmounted by the test's
cleanup, whatever happened."""

from __future__ import annotations

import os
import subprocess

from twisted.trial.unittest import TestCase

from tests.support.twistd import fresh_directory

#: Size of a test file system.
IMAGE_SIZE = "64M"


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def loop_mount(testcase: TestCase, read_only: bool = False) -> str:
    """Mount a fresh ext4 file system; return its (empty, root-owned,
    world-writable unless ``read_only``) directory."""
    if os.geteuid() != 0:
        testcase.skipTest("mounting a loop file system needs root")
    base = fresh_directory(testcase)
    image = os.path.join(base, "disk.img")
    mountpoint = os.path.join(base, "mnt")
    os.mkdir(mountpoint)
    _run("truncate", "-s", IMAGE_SIZE, image)
    _run("mkfs.ext4", "-q", "-F", image)
    if read_only:
        _run("mount", "-o", "loop,ro", image, mountpoint)
    else:
        _run("mount", "-o", "loop", image, mountpoint)
        os.chmod(mountpoint, 0o1777)
    testcase.addCleanup(_unmount, mountpoint)
    return mountpoint


def remount_read_only(mountpoint: str) -> None:
    """Make a mounted file system read-only (``mount -o remount,ro``)."""
    _run("mount", "-o", "remount,ro", mountpoint)


def _unmount(mountpoint: str) -> None:
    # Thawed first: a frozen file system cannot be unmounted.
    subprocess.run(["fsfreeze", "-u", mountpoint], capture_output=True, timeout=60)
    try:
        _run("umount", mountpoint)
    except RuntimeError:
        # Still busy (a process of the test not reaped yet): detach it now,
        # the kernel frees it once the last user is gone.
        _run("umount", "-l", mountpoint)


def freeze(testcase: TestCase, mountpoint: str) -> None:
    """Freeze the file system (writes block until ``thaw``); the test's
    cleanup thaws it, before it stops the processes it started."""
    _run("fsfreeze", "-f", mountpoint)
    testcase.addCleanup(thaw, mountpoint)


def thaw(mountpoint: str) -> None:
    """Let writes on the file system go on (harmless when not frozen)."""
    subprocess.run(["fsfreeze", "-u", mountpoint], capture_output=True, timeout=60)
