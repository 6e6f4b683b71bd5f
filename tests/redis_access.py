"""Redis clients for tests and the helper processes they start, on a single Redis or a
Redis Cluster as the settings say (``SKYHIVE_TEST_REDIS``). A helper process gets one string:
``client_url`` marks a cluster's URL with ``cluster+``, which ``connect_url`` reads."""

from __future__ import annotations

from typing import Any

from skyhive.adapters.redis_client import connect, masters
from skyhive.settings import Settings

_CLUSTER = "cluster+"


def client_url(settings: Settings) -> str:
    return (_CLUSTER if settings.redis_cluster else "") + settings.redis_url


def connect_url(url: str, **options: Any) -> Any:
    return connect(url.removeprefix(_CLUSTER), cluster=url.startswith(_CLUSTER), **options)


def subscribers(client: Any, channel: str) -> int:
    """Subscribers of ``channel`` on every node: on a cluster each node counts only its own
    connections' (redis-py asks one node unless told)."""
    return sum(int(dict(n.pubsub_numsub(channel)).get(channel, 0)) for n in masters(client))


def redis_of(settings: Settings, **options: Any) -> Any:
    """A client of the settings' Redis, of its own (as another process would have)."""
    return connect(settings.redis_url, cluster=settings.redis_cluster, **options)
