"""``--cluster URL``: the Redis a node joins, as ``twistd muca`` reads it,
and the usage errors a mistyped URL gives."""

from __future__ import annotations

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from muca.cluster.address import RedisAddress
from muca.service import tap


def cluster_of(url: str) -> RedisAddress:
    """The address ``twistd muca --cluster URL`` joins."""
    options = tap.Options()
    options.parseOptions(["--cluster", url])
    return options["cluster"]


def refusal(url: str) -> str:
    """The usage error of ``twistd muca --cluster URL``."""
    options = tap.Options()
    try:
        options.parseOptions(["--cluster", url])
    except UsageError as error:
        return str(error)
    raise AssertionError(f"--cluster {url!r} was accepted")


class ClusterURLTests(SynchronousTestCase):
    def test_host_port_and_database(self) -> None:
        address = cluster_of("redis://10.0.0.7:6380/3")
        self.assertEqual(address, RedisAddress("10.0.0.7", 6380, 3))
        # As the node's log names it ("cluster: connecting to ...").
        self.assertEqual(str(address), "redis://10.0.0.7:6380/3")

    def test_port_and_database_default_to_6379_and_0(self) -> None:
        self.assertEqual(str(cluster_of("redis://cache")), "redis://cache:6379/0")
        self.assertEqual(str(cluster_of("redis://cache/")), "redis://cache:6379/0")
        self.assertEqual(str(cluster_of("redis://cache:7000")), "redis://cache:7000/0")
        self.assertEqual(str(cluster_of("redis://cache/12")), "redis://cache:6379/12")

    def test_not_a_redis_url(self) -> None:
        for url in ("http://127.0.0.1:6379", "redis:///0", "127.0.0.1:6379", ""):
            self.assertEqual(
                refusal(url), f"--cluster: not a redis://host:port/db URL: {url!r}"
            )

    def test_bad_port_or_database(self) -> None:
        for url in ("redis://cache:port/0", "redis://cache:99999", "redis://cache/X"):
            self.assertEqual(
                refusal(url), f"--cluster: bad port or database number in {url!r}"
            )
