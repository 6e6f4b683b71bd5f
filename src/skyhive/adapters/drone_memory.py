"""The live fleet state in Redis (the ``FleetState`` port): what the processor remembers per
drone between batches, read and written in one command each per batch: the recent sequence
numbers (``seenslots:{id}``, for dedup), the alert rules' memory (``alertmem:{id}``) and whether
the drone has active alerts (``alertstate:{id}``: each drone's keys share its hash tag, so a
script may touch them together on a Redis Cluster too); with them, in the same round trips, the
live state (``adapters/live_state.py``), registry membership, the nearest station, the active
alerts that changed and when each drone was last heard (``alerting:heard``, for the offline
watch).

At 1,000+ messages/s the per-command cost of a Redis client, not Redis, dominates a batch;
two scripts, each called once per batch on a single Redis (once per hash slot on a cluster:
``slot_groups``), replace seven commands per drone.

The recent sequence numbers are a direct-mapped window: ``seenslots:{id}`` is a string of
``window`` 64-bit slots, and seq *s* is written, as *s* + 1 (so an empty slot means none), to
slot *s* mod ``window`` (``BITFIELD``, as two 32-bit halves: Lua's numbers are doubles, exact
only to 2^53). A seq counts as seen only if its slot holds exactly it, so nothing unseen is
ever dropped; for a counter that climbs, the window is its last ``window`` seqs. Against a
sorted set of the same seqs it costs a third of Redis's time per reading (no skiplist insert
and trim) and 8 bytes per seq instead of about 100 (16 KB per drone at 2,048).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from skyhive.adapters.active_alerts import RedisActiveAlerts, alert_state_key
from skyhive.adapters.fleet_repo import REGISTERED
from skyhive.adapters.live_state import (
    APPLIED,
    APPLY_IF_NEWER_FN,
    FLEET_UPDATES,
    KEPT,
    STATIONS_GEO,
    LiveState,
    apply_args,
    drone_key,
)
from skyhive.adapters.redis_client import LuaScript, RedisClient, slot_groups
from skyhive.domain.telemetry import Telemetry
from skyhive.ports.fleet_state import FleetWrite, Recall, Recalled, Silent

MEMORY_TTL_S = 7 * 86400
# Drones per script call. A batch's scripts go in one pipeline, but Redis runs a script to the
# end before anyone else's command: at ~20 µs per drone, a 1,000-drone script held the
# dispatcher's reads for 20 ms; between chunks, other clients' commands get their turn.
SCRIPT_CHUNK = 200
HEARD = "alerting:heard"  # zset: drone → when telemetry from it last arrived (epoch s)
SWEEP_LOCK = "alerting:offline:lock"

# A batch of drones in one command each way: at 1,000+ readings/s the client's cost per
# command (packing, a reply to parse), not Redis's, is what adds up. Arguments travel as one
# JSON document (Redis's Lua has cjson): field values as strings, and seqs as 32-bit halves
# (``_slots``), so none loses precision in Lua's doubles.

# Each seq travels as its slot and the two 32-bit halves of seq + 1 (``_slots``).
_BITFIELD_OPS = """
local function bitfield_ops(op, slots, with_values)
  local ops = {}
  for j = 1, #slots, 3 do
    local at = 2 * slots[j]
    for h = 0, 1 do
      ops[#ops + 1] = op
      ops[#ops + 1] = 'u32'
      ops[#ops + 1] = '#' .. (at + h)
      if with_values then ops[#ops + 1] = slots[j + 1 + h] end
    end
  end
  return ops
end
"""

# KEYS: each drone's seen, memory and alert state keys, in turn.
# ARGV[1]: JSON, each drone's seqs as slots: [[slot, hi, lo, slot, hi, lo, ...], ...].
# Returns, drone after drone: its memory or nil, 1 if it has active alerts else 0, then 1
# (seen) or 0 per seq.
_RECALL = LuaScript(
    _BITFIELD_OPS
    + """
local asked, out = cjson.decode(ARGV[1]), {}
for i, slots in ipairs(asked) do
  local k = 3 * (i - 1)
  out[#out + 1] = redis.call('GET', KEYS[k + 2])
  out[#out + 1] = redis.call('EXISTS', KEYS[k + 3])
  local got = redis.call('BITFIELD', KEYS[k + 1], unpack(bitfield_ops('GET', slots, false)))
  for j = 1, #slots, 3 do
    local g = 2 * (j - 1) / 3
    local seen = got[g + 1] == slots[j + 1] and got[g + 2] == slots[j + 2]
    out[#out + 1] = seen and 1 or 0
  end
end
return out
"""
)

# KEYS: each drone's state, seen and memory keys, in turn.
# ARGV[1]: JSON [ttl, [[apply args or false, slots (as for _RECALL), memory or ""], ...]].
# Returns per drone what ``apply_if_newer`` said of its latest reading, KEPT without one.
_COMMIT = LuaScript(
    APPLY_IF_NEWER_FN
    + _BITFIELD_OPS
    + """
local batch, out = cjson.decode(ARGV[1]), {}
local ttl = batch[1]
for i, d in ipairs(batch[2]) do
  local k = 3 * (i - 1)
  out[i] = 0
  if d[1] then out[i] = apply_if_newer(KEYS[k + 1], d[1]) end
  if #d[2] > 0 then
    redis.call('BITFIELD', KEYS[k + 2], unpack(bitfield_ops('SET', d[2], true)))
    redis.call('EXPIRE', KEYS[k + 2], ttl)
  end
  if d[3] ~= '' then redis.call('SET', KEYS[k + 3], d[3], 'EX', ttl) end
end
return out
"""
)


def memory_key(drone_id: str) -> str:
    return f"alertmem:{{{drone_id}}}"


def seen_key(drone_id: str) -> str:
    return f"seenslots:{{{drone_id}}}"


def _chunks(client: Any, ids: list[str]) -> list[list[str]]:
    """The script calls for ``ids``: by hash slot, then at most SCRIPT_CHUNK each."""
    return [
        group[i : i + SCRIPT_CHUNK]
        for group in slot_groups(client, ids, drone_key)
        for i in range(0, len(group), SCRIPT_CHUNK)
    ]


def _slots(seqs: Sequence[int], window: int) -> list[int]:
    """Each seq as (its slot, the high and low 32 bits of seq + 1), flattened."""
    out: list[int] = []
    for s in seqs:
        out += (s % window, (s + 1) >> 32, (s + 1) & 0xFFFFFFFF)
    return out


def _iso(dt: Any) -> str:
    return str(dt.isoformat().replace("+00:00", "Z"))


class DroneMemory:
    def __init__(self, client: RedisClient, alerts: RedisActiveAlerts, window: int) -> None:
        """``client`` must decode responses (str); ``window``: seqs remembered per drone."""
        self._window = window
        self._r: Any = client  # redis-py's response types are too loose to be useful here
        self._alerts = alerts

    def recall(
        self,
        seqs: Mapping[str, Sequence[int]],
        near: Mapping[str, tuple[float, float]],
        radius_km: float,
    ) -> Recall:
        if not seqs:
            return Recall({}, {})
        pipe = self._r.pipeline(transaction=False)
        ids = list(seqs)
        chunks = _chunks(self._r, ids)
        for chunk in chunks:
            keys: list[str] = []
            for drone_id in chunk:
                keys += (seen_key(drone_id), memory_key(drone_id), alert_state_key(drone_id))
            asked = orjson.dumps([_slots(seqs[d], self._window) for d in chunk])
            _RECALL(pipe, keys, [asked])
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
        pipe.smismember(REGISTERED, ids)
        results = pipe.execute()
        flat = [x for part in results[: len(chunks)] for x in part]
        found, registered = results[len(chunks) : -1], results[-1]
        nearest = {}
        for drone_id, hit in zip(near, found, strict=True):
            if hit:
                code, km = hit[0]
                nearest[drone_id] = (str(code), float(km))
        member = dict(zip(ids, registered, strict=True))
        drones = {}
        at = 0
        for drone_id in (d for chunk in chunks for d in chunk):
            drone_seqs = seqs[drone_id]
            memory, has_alerts = flat[at], flat[at + 1]
            seen = [s == 1 for s in flat[at + 2 : at + 2 + len(drone_seqs)]]
            at += 2 + len(drone_seqs)
            drones[drone_id] = Recalled(memory, bool(has_alerts), seen, bool(member[drone_id]))
        return Recall(drones, nearest)

    def commit(self, write: FleetWrite) -> list[Telemetry]:
        now = _iso(write.updated_at)
        latest = {t.drone_id: (t, registered) for t, registered in write.latest}
        fields = {d: {**t.live_fields(), "updated_at": now} for d, (t, _) in latest.items()}
        order = list(dict.fromkeys([*latest, *write.seen, *write.memory]))
        pipe = self._r.pipeline(transaction=False)
        self._alerts.queue_swap(pipe, write.alerts)
        if write.heard:
            pipe.zadd(HEARD, dict.fromkeys(write.heard, write.heard_at.timestamp()), gt=True)
        chunks = _chunks(self._r, order)
        for chunk in chunks:
            keys: list[str] = []
            drones: list[list[Any]] = []
            for drone_id in chunk:
                keys += (drone_key(drone_id), seen_key(drone_id), memory_key(drone_id))
                got = latest.get(drone_id)
                drones.append(
                    [
                        apply_args(got[0], fields[drone_id], got[1]) if got else False,
                        _slots(write.seen.get(drone_id, ()), self._window),
                        (write.memory.get(drone_id) or b"").decode(),
                    ]
                )
            batch = orjson.dumps([MEMORY_TTL_S, drones])
            _COMMIT(pipe, keys, [batch])
        results = pipe.execute()
        became = dict(
            zip(
                (d for chunk in chunks for d in chunk),
                (x for part in results[len(results) - len(chunks) :] for x in part),
                strict=True,
            )
        )
        placed = [d for d in latest if became[d] != KEPT]
        applied = [d for d in placed if became[d] == APPLIED]
        pipe = self._r.pipeline(transaction=False)
        LiveState.queue_index(pipe, [latest[d][0] for d in placed])
        if applied:  # a raw command: a cluster pipeline refuses publish() by name
            pipe.execute_command(
                "PUBLISH", FLEET_UPDATES, orjson.dumps([fields[d] for d in applied])
            )
        pipe.execute()
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
