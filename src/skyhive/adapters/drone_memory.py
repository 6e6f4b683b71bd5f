"""The live fleet state in Redis (the ``FleetState`` port): what the processor remembers per
drone between batches, read and written in one command each per batch: the recent sequence
numbers (``seen:{id}``, for dedup), the alert rules' memory (``alertmem:{id}``) and whether
the drone has active alerts (``alertstate:{id}``); with them, in the same round trips, the
live state (``adapters/live_state.py``), registry membership, the nearest station, the active
alerts that changed and when each drone was last heard (``alerting:heard``, for the offline
watch).

At 1,000+ messages/s the per-command cost of a Redis client, not Redis, dominates a batch;
two scripts, each called once per batch, replace seven commands per drone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import redis

from skyhive.adapters.active_alerts import RedisActiveAlerts, alert_state_key
from skyhive.adapters.fleet_repo import REGISTERED
from skyhive.adapters.live_state import (
    APPLY_IF_NEWER_FN,
    FLEET_GEO,
    FLEET_IDS,
    FLEET_UPDATES,
    STATIONS_GEO,
    apply_args,
    drone_key,
    seen_key,
)
from skyhive.domain.telemetry import Telemetry
from skyhive.ports.fleet_state import FleetWrite, Recall, Recalled, Silent

MEMORY_TTL_S = 7 * 86400
HEARD = "alerting:heard"  # zset: drone → when telemetry from it last arrived (epoch s)
SWEEP_LOCK = "alerting:offline:lock"

# A batch of drones in one command each way: at 1,000+ readings/s the client's cost per
# command (packing, a reply to parse), not Redis's, is what adds up. Arguments travel as one
# JSON document (Redis's Lua has cjson), numbers as strings so none loses precision.

# KEYS: each drone's seen, memory and alert state keys, in turn.
# ARGV[1]: JSON, each drone's sequence numbers: [["17", "18"], ...].
# Returns, drone after drone: its memory or nil, 1 if it has active alerts else 0, then a
# score (seen) or nil per sequence number.
_RECALL = """
local asked, out = cjson.decode(ARGV[1]), {}
for i, seqs in ipairs(asked) do
  local k = 3 * (i - 1)
  out[#out + 1] = redis.call('GET', KEYS[k + 2])
  out[#out + 1] = redis.call('EXISTS', KEYS[k + 3])
  local scores = redis.call('ZMSCORE', KEYS[k + 1], unpack(seqs))
  for j = 1, #seqs do out[#out + 1] = scores[j] end
end
return out
"""

# KEYS: fleet geo, fleet ids, then each drone's state, seen and memory keys, in turn.
# ARGV[1]: JSON [window, ttl, [[apply args or false, [seq, ...], memory or ""], ...]].
# Returns per drone 1 if its live state moved (``apply_if_newer``), else 0.
_COMMIT = (
    APPLY_IF_NEWER_FN
    + """
local batch, out = cjson.decode(ARGV[1]), {}
local window, ttl = batch[1], batch[2]
for i, d in ipairs(batch[3]) do
  local k = 2 + 3 * (i - 1)
  out[i] = 0
  if d[1] then out[i] = apply_if_newer(KEYS[k + 1], KEYS[1], KEYS[2], d[1]) end
  local seqs = d[2]
  if #seqs > 0 then
    local members = {}
    for _, s in ipairs(seqs) do
      members[#members + 1] = s
      members[#members + 1] = s
    end
    redis.call('ZADD', KEYS[k + 2], unpack(members))
    redis.call('ZREMRANGEBYRANK', KEYS[k + 2], 0, -(window + 1))
    redis.call('EXPIRE', KEYS[k + 2], ttl)
  end
  if d[3] ~= '' then redis.call('SET', KEYS[k + 3], d[3], 'EX', ttl) end
end
return out
"""
)


def memory_key(drone_id: str) -> str:
    return f"alertmem:{drone_id}"


def _iso(dt: Any) -> str:
    return str(dt.isoformat().replace("+00:00", "Z"))


class DroneMemory:
    def __init__(self, client: redis.Redis, alerts: RedisActiveAlerts) -> None:
        """``client`` must decode responses (str)."""
        self._r: Any = client  # redis-py's response types are too loose to be useful here
        self._alerts = alerts
        self._recall = client.register_script(_RECALL)
        self._commit = client.register_script(_COMMIT)

    def recall(
        self,
        seqs: Mapping[str, Sequence[int]],
        near: Mapping[str, tuple[float, float]],
        radius_km: float,
    ) -> Recall:
        if not seqs:
            return Recall({}, {})
        pipe = self._r.pipeline(transaction=False)
        keys: list[str] = []
        for drone_id in seqs:
            keys += (seen_key(drone_id), memory_key(drone_id), alert_state_key(drone_id))
        asked = orjson.dumps([[str(s) for s in drone_seqs] for drone_seqs in seqs.values()])
        self._recall(keys=keys, args=[asked], client=pipe)
        for lat, lon in near.values():
            pipe.geosearch(
                STATIONS_GEO,
                longitude=lon,
                latitude=lat,
                radius=radius_km,
                unit="km",
                sort="ASC",
                count=1,
                withdist=True,
            )
        pipe.smismember(REGISTERED, list(seqs))
        flat, *found, registered = pipe.execute()
        nearest = {}
        for drone_id, hit in zip(near, found, strict=True):
            if hit:
                code, km = hit[0]
                nearest[drone_id] = (str(code), float(km))
        drones = {}
        at = 0
        for (drone_id, drone_seqs), member in zip(seqs.items(), registered, strict=True):
            memory, has_alerts = flat[at], flat[at + 1]
            seen = [s is not None for s in flat[at + 2 : at + 2 + len(drone_seqs)]]
            at += 2 + len(drone_seqs)
            drones[drone_id] = Recalled(memory, bool(has_alerts), seen, bool(member))
        return Recall(drones, nearest)

    def commit(self, write: FleetWrite) -> list[Telemetry]:
        now = _iso(write.updated_at)
        latest = {t.drone_id: (t, registered) for t, registered in write.latest}
        fields = {d: {**t.live_fields(), "updated_at": now} for d, (t, _) in latest.items()}
        keys = [FLEET_GEO, FLEET_IDS]
        drones: list[list[Any]] = []
        order = list(dict.fromkeys([*latest, *write.seen, *write.memory]))
        for drone_id in order:
            keys += (drone_key(drone_id), seen_key(drone_id), memory_key(drone_id))
            got = latest.get(drone_id)
            drones.append(
                [
                    apply_args(got[0], fields[drone_id], got[1]) if got else False,
                    [str(s) for s in write.seen.get(drone_id, ())],
                    (write.memory.get(drone_id) or b"").decode(),
                ]
            )
        pipe = self._r.pipeline(transaction=False)
        self._alerts.queue_swap(pipe, write.alerts)
        if write.heard:
            pipe.zadd(HEARD, dict.fromkeys(write.heard, write.heard_at.timestamp()), gt=True)
        if drones:
            batch = orjson.dumps([write.window, MEMORY_TTL_S, drones])
            self._commit(keys=keys, args=[batch], client=pipe)
        results = pipe.execute()
        moved = results[-1] if drones else []
        applied = [d for d, ok in zip(order, moved, strict=True) if ok == 1 and d in latest]
        if applied:
            self._r.publish(FLEET_UPDATES, orjson.dumps([fields[d] for d in applied]))
        return [latest[d][0] for d in applied]

    def take_sweep(self, hold_ms: int) -> bool:
        return bool(self._r.set(SWEEP_LOCK, "1", nx=True, px=hold_ms))

    def silent(self, before: float, limit: int) -> list[Silent]:
        found: list[Any] = self._r.zrangebyscore(
            HEARD, "-inf", before, start=0, num=limit, withscores=True
        )
        if not found:
            return []
        pipe = self._r.pipeline(transaction=False)
        for d, _ in found:
            pipe.hget(drone_key(str(d)), "status")
        statuses = pipe.execute()
        return [Silent(str(d), float(at), s) for (d, at), s in zip(found, statuses, strict=True)]

    def forget_heard(self, drone_id: str) -> None:
        self._r.zrem(HEARD, drone_id)
