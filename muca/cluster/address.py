"""Where the cluster's Redis is: the ``--cluster redis://host:port/db`` URL."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit


class BadClusterURL(ValueError):
    """A ``--cluster`` value that is not a ``redis://host:port/db`` URL."""


@dataclasses.dataclass(frozen=True)
class RedisAddress:
    """Where the cluster's Redis is."""

    host: str
    port: int
    db: int

    def __str__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


def parse_cluster_url(url: str) -> RedisAddress:
    """Read ``redis://host[:port][/db]``; raise :class:`BadClusterURL`."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise BadClusterURL(f"not a redis://host:port/db URL: {url!r}")
    try:
        port = parts.port or 6379
        path = parts.path.strip("/")
        db = int(path) if path else 0
    except ValueError:
        raise BadClusterURL(f"bad port or database number in {url!r}") from None
    return RedisAddress(parts.hostname, port, db)
