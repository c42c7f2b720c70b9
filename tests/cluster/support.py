"""Cluster test pieces: nodes are real ``twistd -n muca --cluster`` processes."""

from __future__ import annotations

import re
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support import OKAY, RawClient, connect, join, send
from tests.support.redis import RedisServer
from tests.support.twistd import Twistd, start_twistd

#: Seconds to wait for each expected object: generous, as a loaded 2-core
#: machine can hold a node back for seconds; a passing test never waits it.
WAIT = 30.0


async def start_node(testcase: TestCase, redis: RedisServer, *args: str) -> Twistd:
    """A cluster node on ``redis``, once it has joined the cluster."""
    node = await start_twistd(
        testcase, "--cluster", redis.url, "--rate-limit", "0", *args
    )
    try:
        await node.process.wait_for(r"cluster: node \w+ joined")
    except Exception:
        raise AssertionError(
            f"node did not join the cluster:\n{node.process.output[-3000:]}"
        ) from None
    return node


async def logged(node: Twistd, pattern: str, since: int, timeout: float = WAIT) -> None:
    """Wait (bounded) until ``node`` logs ``pattern`` after offset ``since``
    of its output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, node.process.output[since:]):
            return
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"{pattern!r} not logged:\n{node.process.output[since:]}")


async def join_on(
    testcase: TestCase, node: Twistd, nickname: str, uid: str, **extra: Any
) -> RawClient:
    """Connect to ``node`` and join; the ACK must be OKAY."""
    client = await connect(testcase, node.port)
    client.send_json(join(nickname, uid, **extra))
    testcase.assertEqual(await client.next_object(WAIT), OKAY)
    return client


async def next_of(client: RawClient, cmd: str, timeout: float = WAIT) -> Any:
    """The next object with this ``CMD``, skipping others (e.g. rosters)."""
    for _ in range(1000):
        obj = await client.next_object(timeout)
        if obj.get("CMD") == cmd:
            return obj
    raise AssertionError(f"no {cmd} in 1000 objects")


async def roster_becomes(
    client: RawClient, peers: list[tuple[str, str]], timeout: float = WAIT
) -> None:
    """Read ``LIST``s until one is exactly ``peers``, in this order."""
    want = [{"UN": un, "UID": uid} for un, uid in peers]
    seen = None
    for _ in range(1000):
        obj = await client.next_object(timeout)
        if obj.get("CMD") == "LIST":
            seen = obj["DATA"]
            if seen == want:
                return
    raise AssertionError(f"last LIST {seen} is not {want}")


async def next_of_any(tony: RawClient, mary: RawClient) -> dict[str, Any]:
    """Tony's next ERROR or Mary's next MSG, whichever comes first (bounded)."""
    for _ in range(1200):
        for client, cmd in ((tony, "ERROR"), (mary, "MSG")):
            while client.pending():
                obj = await client.next_object()
                if obj.get("CMD") == cmd:
                    return obj
        await deferLater(reactor, 0.05)
    raise AssertionError("neither an ERROR nor the MSG came in 60 s")


async def sends_until_delivered(
    testcase: TestCase, tony: RawClient, uid: str, mary: RawClient, code: str
) -> int:
    """Tony (``uid``) sends to the room every 0.2 s until Mary gets one of
    them, each refused meanwhile with ``code`` (bounded); how many were
    refused."""
    for attempt in range(200):
        tony.send_json(send(f"again {attempt}", [], uid))
        got = await next_of_any(tony, mary)
        if got.get("CMD") == "MSG":
            testcase.assertEqual(got["MSG"], f"again {attempt}")
            return attempt
        testcase.assertEqual(got["CODE"], code)
        await deferLater(reactor, 0.2)
    testcase.fail("the cluster did not recover")
