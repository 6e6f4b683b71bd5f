"""`skyhive up` on a Redis Cluster of three masters (``SKYHIVE_REDIS_CLUSTER``): every role's
Redis is the cluster, with the telemetry bus in partitions read by two processors. Telemetry
from MQTT to live state, history and alerts; a command back to the drone through the commands
stream; every group caught up. (``test_deliveries.py`` flies deliveries on it too.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.harness import Up, refusal, running, wait_for
from e2e.test_up import command_reaches, fly_with_faults
from redis_access import connect_url

pytestmark = pytest.mark.e2e
DRONE = "cluster-1"


def on_cluster(url: str) -> dict[str, str]:
    """The environment of `skyhive up` on the cluster at ``url``, emptied first (the session's
    cluster is shared by the tests that ask for it)."""
    r = connect_url("cluster+" + url)
    try:
        r.flushall(target_nodes=r.PRIMARIES)
    finally:
        r.close()
    return {"SKYHIVE_REDIS_URL": url, "SKYHIVE_REDIS_CLUSTER": "true"}


@pytest.fixture(scope="module")
def up(embedded_redis_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    env = {
        **on_cluster(embedded_redis_cluster),
        "SKYHIVE_BUS_PARTITIONS": "3",  # the partitions are in three slots: read one by one
        "SKYHIVE_PROCESSORS": "2",
    }
    yield from running(tmp_path_factory.mktemp("e2e-redis-cluster") / "data", env)


def test_up_refuses_a_cluster_without_its_url(tmp_path: Path) -> None:
    assert "SKYHIVE_REDIS_CLUSTER=true needs SKYHIVE_REDIS_URL" in refusal(
        tmp_path / "data", {"SKYHIVE_REDIS_CLUSTER": "true"}
    )


def test_telemetry_and_alerts_flow_on_a_redis_cluster(up: Up, embedded_redis_cluster: str) -> None:
    assert embedded_redis_cluster in up.log_text()
    fly_with_faults(up, DRONE)
    assert DRONE in {d["drone_id"] for d in up.get("/api/v1/drones")["items"]}  # fleet:ids
    nearby = up.get("/api/v1/drones/nearby?lat=37.80&lon=-122.27&radius_km=5")["items"]
    assert [d["drone_id"] for d in nearby] == [DRONE]  # fleet:geo

    def caught_up() -> bool:
        groups = {(g["stream"], g["group"]): g for g in up.get("/api/v1/bus")["lag"]["groups"]}
        wanted = [("telemetry", "processor"), ("telemetry", "archiver"), ("alerts", "notifier")]
        return all(k in groups and groups[k]["unacked"] == 0 for k in wanted)

    wait_for(caught_up, what="every group caught up in /api/v1/bus")


def test_a_command_reaches_the_drone_on_a_redis_cluster(up: Up) -> None:
    assert command_reaches(up, "cluster-2", "e2e on a cluster")["type"] == "return_to_station"
