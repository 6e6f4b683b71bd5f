"""Live fleet picture in Redis: a hash per drone, a GEO set, and dedup windows.

Keys: ``drone:{<id>}`` (latest state; the braces are a Redis Cluster hash tag, shared by the
drone's other keys: ``adapters/redis_client.py``), ``fleet:ids`` (every drone seen),
``fleet:geo`` (positions), ``stations:geo``. Watchers (the dashboard) hear of moved drones on
``fleet:updates`` and of alert changes on ``alerts:live`` (the ``AlertFeed`` port).

A state moves in a script on the drone's own key only; the fleet-wide indexes follow in the
next command (``queue_index``), since on a cluster they live in other slots. They are
idempotent, and a reading already in the state (``ALREADY``) is indexed again; a replay whose
readings the duplicate window drops does not reach them, so a crash between the two commands
leaves the indexes behind until the drone's next reading (docs/architecture.md, step 4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from skyhive.adapters.redis_client import LuaScript, RedisClient, slot_groups
from skyhive.domain.geo import haversine_m
from skyhive.domain.remote_id import View
from skyhive.domain.stations import Station
from skyhive.domain.telemetry import Telemetry

FLEET_IDS = "fleet:ids"
FLEET_GEO = "fleet:geo"
STATIONS_GEO = "stations:geo"
FLEET_UPDATES = "fleet:updates"
ALERTS_LIVE = "alerts:live"

# What apply_if_newer says of a reading.
KEPT, APPLIED, ALREADY = 0, 1, 2

# Writes the new state only if it is newer (event time, then seq) than what is stored, so
# out-of-order and replayed messages never move a drone backwards, whoever processes them.
# Returns APPLIED, ALREADY (this very reading is the state: a replay) or KEPT (older).
# A Lua function, so the processor's batch script (adapters/drone_memory.py) runs the same
# code. ``a``: ts_ms, seq, then field, value, ... (``apply_args``).
APPLY_IF_NEWER_FN = """
local function apply_if_newer(state, a)
  local cur = redis.call('HMGET', state, 'ts_ms', 'seq')
  if cur[1] then
    local cts, cseq = tonumber(cur[1]), tonumber(cur[2])
    local ts, seq = tonumber(a[1]), tonumber(a[2])
    if ts == cts and seq == cseq then return 2 end
    if ts < cts or (ts == cts and seq < cseq) then return 0 end
  end
  redis.call('HSET', state, unpack(a, 3))
  return 1
end
"""
# KEYS: drone states; ARGV[1]: JSON, each one's ``apply_args``. Returns what each became.
_APPLY_IF_NEWER = LuaScript(
    APPLY_IF_NEWER_FN
    + """
local batch, out = cjson.decode(ARGV[1]), {}
for i, a in ipairs(batch) do out[i] = apply_if_newer(KEYS[i], a) end
return out
"""
)

# The named fields of each drone's state, in one command for many drones: on the dispatch
# path the per-command cost of a pipeline, not Redis, is what adds up.
# KEYS: state keys; ARGV: field names.
_READ_FIELDS = LuaScript(
    """
local out = {}
for i = 1, #KEYS do
  local values = redis.call('HMGET', KEYS[i], unpack(ARGV))
  for j = 1, #ARGV do out[#out + 1] = values[j] end
end
return out
"""
)

_FLOAT_FIELDS = ("lat", "lon", "alt_m", "speed_mps", "heading_deg", "battery_pct", "payload_kg")


def drone_key(drone_id: str) -> str:
    return f"drone:{{{drone_id}}}"


def state_from_hash(h: Mapping[str, str]) -> dict[str, Any]:
    """Typed live state from the flat Redis hash."""
    out: dict[str, Any] = {
        "drone_id": h.get("drone_id"),
        "seq": int(h["seq"]) if h.get("seq") else None,
        "ts": h.get("ts") or None,
        "status": h.get("status") or None,
        "emergency": h.get("emergency") == "1",
        "registered": h.get("registered", "1") == "1",
        "delivery_id": h.get("delivery_id") or None,
        "updated_at": h.get("updated_at") or None,
    }
    for name in _FLOAT_FIELDS:
        raw = h.get(name)
        out[name] = float(raw) if raw else None
    return out


def apply_args(t: Telemetry, fields: Mapping[str, str], registered: bool) -> list[str]:
    """The arguments of ``apply_if_newer`` for a reading and its live ``fields``
    (``Telemetry.live_fields`` with ``updated_at``)."""
    args = [str(t.ts_ms), str(t.seq)]
    for k, v in fields.items():
        args += (k, v)
    args += ("registered", "1" if registered else "0")
    return args


class LiveState:
    def __init__(self, client: RedisClient) -> None:
        """``client`` must decode responses (str)."""
        self._r: Any = client  # redis-py's response types are too loose to be useful here

    def apply(
        self, readings: Sequence[Telemetry], updated_at: str, registered: bool = True
    ) -> list[str]:
        """Move each drone's state to its reading if newer; the drones placed (moved, or
        already there)."""
        latest: dict[str, Telemetry] = {}
        for t in readings:
            held = latest.get(t.drone_id)
            if held is None or (t.ts_ms, t.seq) > (held.ts_ms, held.seq):
                latest[t.drone_id] = t
        args = {
            d: apply_args(t, {**t.live_fields(), "updated_at": updated_at}, registered)
            for d, t in latest.items()
        }
        pipe = self._r.pipeline(transaction=False)
        groups = slot_groups(self._r, latest, drone_key)
        for group in groups:
            batch = orjson.dumps([args[d] for d in group])
            _APPLY_IF_NEWER(pipe, [drone_key(d) for d in group], [batch])
        became = [x for part in pipe.execute() for x in part]
        placed = [
            d for d, b in zip((d for g in groups for d in g), became, strict=True) if b != KEPT
        ]
        pipe = self._r.pipeline(transaction=False)
        self.queue_index(pipe, [latest[d] for d in placed])
        pipe.execute()
        return placed

    @staticmethod
    def queue_index(pipe: Any, placed: Sequence[Telemetry]) -> None:
        """Queue the fleet-wide indexes' update for drones whose state is now ``placed``'s
        reading: every drone seen, and the positions."""
        if not placed:
            return
        pipe.sadd(FLEET_IDS, *[t.drone_id for t in placed])
        located: list[Any] = []
        for t in placed:
            if t.lon is not None and t.lat is not None:
                located += (t.lon, t.lat, t.drone_id)
        if located:
            pipe.geoadd(FLEET_GEO, located)

    def get(self, drone_id: str) -> dict[str, Any] | None:
        h = self._r.hgetall(drone_key(drone_id))
        return state_from_hash(h) if h else None

    def get_many(self, drone_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """States in the order asked, in one round trip; None for an unknown drone."""
        if not drone_ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        for drone_id in drone_ids:
            pipe.hgetall(drone_key(drone_id))
        return [state_from_hash(h) if h else None for h in pipe.execute()]

    def queue_read_fields(
        self, pipe: Any, drone_ids: Sequence[str], fields: Sequence[str]
    ) -> Callable[[list[Any]], list[list[str | None]]]:
        """Queue, in ``pipe``, the reading of ``fields`` of each drone's state (None where
        missing); returns what turns the pipeline's replies, from the first of these on, into
        one row per drone in the order asked."""
        groups = slot_groups(self._r, drone_ids, drone_key)
        for group in groups:
            _READ_FIELDS(pipe, [drone_key(d) for d in group], fields)

        def rows(replies: list[Any]) -> list[list[str | None]]:
            flat = [x for part in replies[: len(groups)] for x in part]
            width = len(fields)
            got = {
                d: flat[i * width : (i + 1) * width]
                for i, d in enumerate(d for g in groups for d in g)
            }
            return [got[d] for d in drone_ids]

        return rows

    def all(self) -> list[dict[str, Any]]:
        return [s for s in self.get_many(sorted(self._r.smembers(FLEET_IDS))) if s is not None]

    def nearby(
        self, lat: float, lon: float, radius_km: float, limit: int
    ) -> list[tuple[str, float]]:
        """Drone ids within the radius, nearest first, with distance in km."""
        return self.nearby_many([(lat, lon)], radius_km, limit)[0]

    def nearby_many(
        self, points: Sequence[tuple[float, float]], radius_km: float, limit: int
    ) -> list[list[tuple[str, float]]]:
        """:meth:`nearby` for many points in one round trip."""
        pipe = self._r.pipeline(transaction=False)
        for lat, lon in points:
            pipe.geosearch(
                FLEET_GEO,
                longitude=lon,
                latitude=lat,
                radius=radius_km,
                unit="km",
                sort="ASC",
                count=limit,
                withdist=True,
            )
        return [[(str(m), float(d)) for m, d in res] for res in pipe.execute()]

    def count_near(
        self, points: Sequence[tuple[float, float]], radius_km: float, cap: int
    ) -> list[int]:
        """How many drones are within ``radius_km`` of each (lat, lon), up to ``cap``; one
        round trip for all the points."""
        pipe = self._r.pipeline(transaction=False)
        for lat, lon in points:
            pipe.geosearch(
                FLEET_GEO, longitude=lon, latitude=lat, radius=radius_km, unit="km", count=cap
            )
        return [len(found) for found in pipe.execute()]

    def in_view(self, view: View) -> list[str]:
        """Drone ids in a box around ``view`` (``GEOSEARCH ... BYBOX``), a superset of those
        inside it: Redis measures a point's east-west offset along the point's own latitude,
        so the box is as wide as the view is at its latitude nearest the equator."""
        clat, clng = (view.lat_min + view.lat_max) / 2, (view.lng_min + view.lng_max) / 2
        widest = (
            0.0 if view.lat_min <= 0 <= view.lat_max else min(view.lat_min, view.lat_max, key=abs)
        )
        width_m = 2 * haversine_m(widest, clng, widest, view.lng_max)
        height_m = haversine_m(view.lat_min, clng, view.lat_max, clng)
        found = self._r.geosearch(
            FLEET_GEO,
            longitude=clng,
            latitude=clat,
            width=width_m * 1.01 + 1,
            height=height_m * 1.01 + 1,
            unit="m",
        )
        return sorted(str(m) for m in found)

    def announce_alerts(self, events: Sequence[bytes]) -> None:
        if events:
            self._r.publish(ALERTS_LIVE, b"[" + b",".join(events) + b"]")

    def seed_stations(self, stations: Sequence[Station]) -> None:
        values: list[Any] = []
        for s in stations:
            values += (s.lon, s.lat, s.code)
        self._r.geoadd(STATIONS_GEO, values)
