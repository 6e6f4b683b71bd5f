"""Keys of a release before Redis Cluster support are renamed at bootstrap: a drone's live
state, duplicate window, rule memory and active alerts, the dispatch state with its claims,
and the reminders carry over (``adapters/redis_key_upgrade.py``)."""

from __future__ import annotations

from typing import Any

from skyhive.adapters.redis_key_upgrade import rename_legacy_keys
from skyhive.bootstrap import bootstrap
from skyhive.wiring import Clients


def old_release(r: object) -> None:
    """What an earlier release left in Redis."""
    c: Any = r
    c.hset("drone:d1", mapping={"drone_id": "d1", "seq": "7", "ts_ms": "1000", "lat": "37.8"})
    c.set("seenslots:d1", b"\x00" * 16)
    c.set("alertmem:d1", '{"low": 1}')
    c.hset("alertstate:d1", "low_battery", "a-1|critical|open")
    c.hset("delivery_status", "dl-1", "assigned")
    c.zadd("deliveries:pending", {"dl-2": 1.0})
    c.hset("deliveries:orders", "dl-2", "{}")
    c.sadd("deliveries:active", "dl-1")
    c.hset("deliveries:assigning", "dl-1", "{}")
    c.set("drone:assignment:d1", "dl-1")
    c.zadd("alerts:reminders", {"a-1": 5.0})
    c.hset("alerts:reminder_counts", "a-1", "0:1")


def test_an_earlier_releases_keys_carry_over(clients: Clients, redis_cluster_mode: bool) -> None:
    r = clients.redis_text
    if redis_cluster_mode:  # a cluster never held the old names: nothing is even looked for
        assert rename_legacy_keys(r, clients.settings.commands_stream) == 0
        return
    old_release(r)
    r.hset("drone:{d1}", mapping={"seq": "9"})  # a newer process wrote its new name already
    bootstrap(clients)
    assert clients.live.get("d1") is not None and clients.live.get("d1")["seq"] == 9  # newer kept
    assert clients.active_alerts.get("d1", "low_battery") is not None
    q = clients.dispatch_queue
    assert q.status("dl-1") == "assigned" and q.pending(10) == ["dl-2"]
    assert q.active() == ["dl-1"] and set(q.journal()) == {"dl-1"}
    assert q.claimed(["d1", "d2"]) == {"d1": "dl-1"}
    assert r.zscore("alerts:{reminders}", "a-1") == 5.0
    assert r.hget("alerts:{reminders}:counts", "a-1") == "0:1"
    assert r.get("seenslots:{d1}") is not None and r.get("alertmem:{d1}") == '{"low": 1}'
    left = [k for k in r.scan_iter() if "{" not in k and not k.startswith(("fleet:", "stations:"))]
    assert [k for k in left if k.startswith(("drone:", "deliveries:", "alert", "seen"))] == []
    assert rename_legacy_keys(r, clients.settings.commands_stream) == 0  # once only
