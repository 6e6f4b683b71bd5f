"""The session's Redis is the one ``SKYHIVE_TEST_REDIS`` asked for (tests/conftest.py): a Redis
Cluster of three masters covering every slot, or a single server that is no cluster; and the
per-test FLUSHDB empties every primary of the cluster."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import redis

from skyhive.embedded import CLUSTER_SLOTS
from skyhive.settings import Settings


def _node(url: str) -> redis.Redis:
    parts = urlsplit(url)
    return redis.Redis(host=parts.hostname or "127.0.0.1", port=parts.port or 6379)


def test_the_redis_is_the_one_asked_for(settings: Settings, redis_cluster_mode: bool) -> None:
    node = _node(settings.redis_url)
    try:
        cluster_enabled = node.info("cluster")["cluster_enabled"]
        if not redis_cluster_mode:
            assert not cluster_enabled
            assert not settings.redis_cluster
            return
        assert cluster_enabled
        assert settings.redis_cluster
        info = node.cluster("INFO")
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_slots_assigned"]) == CLUSTER_SLOTS
        assert int(info["cluster_known_nodes"]) == 3
        masters = [n for n in node.cluster("NODES").values() if "master" in n["flags"]]
        assert len(masters) == 3
        # Every slot, once, with the three masters holding a share each.
        owned: list[int] = []
        owners = set()
        for start, end, owner, *_replicas in node.cluster("SLOTS"):
            owned += range(start, end + 1)
            owners.add((owner[0], owner[1]))
        assert sorted(owned) == list(range(CLUSTER_SLOTS))
        assert len(owners) == 3
    finally:
        node.close()


def test_each_test_starts_with_every_primary_emptied(
    embedded_redis: str, redis_cluster_mode: bool, request: pytest.FixtureRequest
) -> None:
    keys = [f"flush-check:{i}" for i in range(200)]
    if redis_cluster_mode:
        cluster = redis.RedisCluster.from_url(embedded_redis)
        try:
            for key in keys:
                cluster.set(key, b"x")
        finally:
            cluster.close()
        first = _node(embedded_redis)
        try:
            primaries = [a for a, n in first.cluster("NODES").items() if "master" in n["flags"]]
        finally:
            first.close()
        nodes = [_node(f"redis://{address}") for address in primaries]
    else:
        nodes = [_node(embedded_redis)]
        nodes[0].mset(dict.fromkeys(keys, b"x"))
    try:
        assert all(node.dbsize() > 0 for node in nodes)  # keys on every primary
        request.getfixturevalue("settings")  # the per-test flush runs here
        assert [node.dbsize() for node in nodes] == [0] * (3 if redis_cluster_mode else 1)
    finally:
        for node in nodes:
            node.close()
