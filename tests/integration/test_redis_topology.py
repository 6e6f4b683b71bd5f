"""One Redis or a Redis Cluster behind one face (``adapters/redis_client.py``): the batches cut
by hash slot, the keys a script touches together in one slot, the scripts loaded on every
connection, the cluster client that connects only when used, and the refusal of a single-Redis
client on a cluster node. Run on both (``SKYHIVE_TEST_REDIS``); the cluster's own answers are
asserted where they differ."""

from __future__ import annotations

import pytest
import redis
from redis.crc import key_slot

from skyhive.adapters.active_alerts import alert_state_key
from skyhive.adapters.dispatch_queue import DispatchKeys
from skyhive.adapters.drone_memory import memory_key, seen_key
from skyhive.adapters.live_state import drone_key
from skyhive.adapters.redis_client import (
    ClusterModeMismatch,
    LuaScript,
    check_mode,
    connect,
    hash_tag,
    is_cluster,
    slot_groups,
)
from skyhive.adapters.redis_streams import RedisStreamsBus
from skyhive.adapters.reminder_schedule import REMINDER_COUNTS, REMINDERS
from skyhive.domain.telemetry import Telemetry, validate_telemetry
from skyhive.embedded import free_port
from skyhive.settings import Settings
from skyhive.wiring import Clients

DRONES = [f"drone-{i}" for i in range(60)]
_INCR = LuaScript("return redis.call('INCR', KEYS[1])")


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_the_keys_a_script_touches_together_share_a_slot() -> None:
    for d in DRONES:
        assert len({slot(k(d)) for k in (drone_key, seen_key, memory_key, alert_state_key)}) == 1
    keys = DispatchKeys.beside("commands")
    together = [keys.status, keys.pending, keys.orders, keys.active, keys.journal, keys.claims]
    assert {slot(k) for k in together} == {slot("commands")}  # the commands stream's slot
    assert slot(REMINDERS) == slot(REMINDER_COUNTS)
    assert hash_tag("telemetry:{p3}") == "p3" and hash_tag("commands") == "commands"
    assert hash_tag("a{}b") == "a{}b"  # an empty tag hashes the whole key, as Redis does


def test_batches_are_cut_by_slot_only_on_a_cluster(
    clients: Clients, redis_cluster_mode: bool
) -> None:
    r = clients.redis_text
    assert is_cluster(r) is redis_cluster_mode
    groups = slot_groups(r, DRONES, drone_key)
    assert sorted(d for g in groups for d in g) == sorted(DRONES)
    if not redis_cluster_mode:
        assert groups == [DRONES]  # one script call, as before clusters
    else:
        assert len(groups) == len({slot(drone_key(d)) for d in DRONES})
        assert all(len({slot(drone_key(d)) for d in g}) == 1 for g in groups)


def test_a_waitaof_batch_goes_to_each_master_on_its_own_connection(
    clients: Clients, redis_cluster_mode: bool
) -> None:
    """WAITAOF waits for its connection's writes only: on a cluster each master's appends
    and its WAITAOF share a pipeline (Redis >= 7.2; the embedded 6.2 has none, so the grouping
    is what is checked here)."""
    bus = RedisStreamsBus(clients.redis_bytes)
    streams = [f"s{i}" for i in range(12)]
    calls = [(s, [1000, "k", b"v"]) for s in streams]
    assert bus._pipelines(calls, waitaof=False) == [(clients.redis_bytes, list(range(12)))]
    parts = bus._pipelines(calls, waitaof=True)
    assert sorted(i for _, idx in parts for i in idx) == list(range(12))
    if not redis_cluster_mode:
        assert len(parts) == 1
        return
    r = clients.redis_bytes
    for client, idx in parts:
        port = client.connection_pool.connection_kwargs["port"]
        assert all(r.get_node_from_key(streams[i]).port == port for i in idx)
    assert len(parts) == len({r.get_node_from_key(s).name for s in streams}) > 1


def test_scripts_are_loaded_on_connect_and_again_after_a_flush(clients: Clients) -> None:
    r = clients.redis_text
    pipe = r.pipeline(transaction=False)
    for key in ("a", "b", "c", "d"):
        _INCR(pipe, [key])
    assert pipe.execute() == [1, 1, 1, 1]  # no SCRIPT LOAD first: the connection has them
    r.script_flush()
    assert _INCR(r, ["a"]) == 2  # a direct call loads it again after NOSCRIPT


def test_a_cluster_client_connects_at_its_first_command_and_fails_as_redis_does() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    client = connect(url, cluster=True, socket_connect_timeout=0.5)  # nothing listens: no error
    with pytest.raises(redis.ConnectionError, match="Redis Cluster cannot be connected"):
        client.ping()
    client.close()


def test_a_single_redis_client_is_refused_on_a_cluster_node(
    settings: Settings, redis_cluster_mode: bool
) -> None:
    single = connect(settings.redis_url, cluster=False)
    try:
        if redis_cluster_mode:
            with pytest.raises(ClusterModeMismatch, match="SKYHIVE_REDIS_CLUSTER=true"):
                check_mode(single)
            check_mode(connect(settings.redis_url, cluster=True))
        else:
            check_mode(single)
    finally:
        single.close()


def reading(drone: str, seq: int, lon: float) -> Telemetry:
    body = {"drone_id": drone, "seq": seq, "ts": 1_700_000_000_000 + seq, "lat": 37.8,
            "lon": lon, "battery_pct": 50.0}  # fmt: skip
    return validate_telemetry(body)


def test_the_live_state_moves_only_forward_and_the_fleet_indexes_follow(clients: Clients) -> None:
    newer = [reading(d, 2, -122.27) for d in DRONES[:20]]
    assert sorted(clients.live.apply(newer, "2026-01-01T00:00:00Z")) == sorted(DRONES[:20])
    older = [reading(d, 1, -122.0) for d in DRONES[:20]]
    assert clients.live.apply(older, "2026-01-01T00:00:01Z") == []  # kept: older
    again = clients.live.apply(newer[:5], "2026-01-01T00:00:02Z")  # the same: placed again
    assert sorted(again) == sorted(DRONES[:5])
    assert clients.redis_text.scard("fleet:ids") == 20
    near = clients.live.nearby(37.8, -122.27, 1.0, 100)
    assert sorted(d for d, _ in near) == sorted(DRONES[:20])
