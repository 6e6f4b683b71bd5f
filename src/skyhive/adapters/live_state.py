"""Live fleet picture in Redis: a hash per drone, a GEO set, and dedup windows.

Keys: ``drone:{id}`` (latest state), ``fleet:ids`` (every drone seen), ``fleet:geo`` (positions),
``stations:geo``. Watchers
(the dashboard) hear of moved drones on ``fleet:updates`` and of alert changes on
``alerts:live`` (the ``AlertFeed`` port).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis

from skyhive.domain.stations import Station
from skyhive.domain.telemetry import Telemetry

FLEET_IDS = "fleet:ids"
FLEET_GEO = "fleet:geo"
STATIONS_GEO = "stations:geo"
FLEET_UPDATES = "fleet:updates"
ALERTS_LIVE = "alerts:live"

# Writes the new state only if it is newer (event time, then seq) than what is stored, so
# out-of-order and replayed messages never move a drone backwards, whoever processes them.
# A Lua function, so the processor's batch script (adapters/drone_memory.py) runs the same
# code. ``a``: ts_ms, seq, lon, lat, drone id, then field, value, ... (``apply_args``).
APPLY_IF_NEWER_FN = """
local function apply_if_newer(state, geo, ids, a)
  local cur = redis.call('HMGET', state, 'ts_ms', 'seq')
  if cur[1] then
    local cts, cseq = tonumber(cur[1]), tonumber(cur[2])
    local ts, seq = tonumber(a[1]), tonumber(a[2])
    if ts < cts or (ts == cts and seq <= cseq) then return 0 end
  else
    redis.call('SADD', ids, a[5])  -- its first state (nothing removes a drone from ids)
  end
  redis.call('HSET', state, unpack(a, 6))
  if a[3] ~= '' and a[4] ~= '' then
    redis.call('GEOADD', geo, a[3], a[4], a[5])
  end
  return 1
end
"""
# KEYS: the drone's state, fleet geo, fleet ids; ARGV: ``apply_args``.
_APPLY_IF_NEWER = APPLY_IF_NEWER_FN + "return apply_if_newer(KEYS[1], KEYS[2], KEYS[3], ARGV)\n"

# For each drone: the named fields of its state, then the value of one more key of its own
# (e.g. its claim). One command for hundreds of drones: on the dispatch path the per-command
# cost of a pipeline, not Redis, is what adds up.
# KEYS: n state keys, then n other keys; ARGV: field names.
_READ_WITH = """
local out, n = {}, #KEYS / 2
for i = 1, n do
  local values = redis.call('HMGET', KEYS[i], unpack(ARGV))
  for j = 1, #ARGV do out[#out + 1] = values[j] end
  out[#out + 1] = redis.call('GET', KEYS[n + i])
end
return out
"""

_FLOAT_FIELDS = ("lat", "lon", "alt_m", "speed_mps", "heading_deg", "battery_pct", "payload_kg")


def drone_key(drone_id: str) -> str:
    return f"drone:{drone_id}"


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
    lon = "" if t.lon is None else repr(t.lon)
    lat = "" if t.lat is None else repr(t.lat)
    args = [str(t.ts_ms), str(t.seq), lon, lat, t.drone_id]
    for k, v in fields.items():
        args += (k, v)
    args += ("registered", "1" if registered else "0")
    return args


class LiveState:
    def __init__(self, client: redis.Redis) -> None:
        """``client`` must decode responses (str)."""
        self._r: Any = client  # redis-py's response types are too loose to be useful here
        self._apply = client.register_script(_APPLY_IF_NEWER)
        self._read_with = client.register_script(_READ_WITH)

    def queue_apply(
        self, pipe: redis.client.Pipeline, t: Telemetry, updated_at: str, registered: bool = True
    ) -> None:
        self._apply(
            keys=[drone_key(t.drone_id), FLEET_GEO, FLEET_IDS],
            args=apply_args(t, {**t.live_fields(), "updated_at": updated_at}, registered),
            client=pipe,
        )

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

    def queue_read_with(
        self,
        pipe: redis.client.Pipeline,
        drone_ids: Sequence[str],
        fields: Sequence[str],
        other_keys: Sequence[str],
    ) -> None:
        """Queue, in ``pipe``, one command reading for each drone ``fields`` of its state (None
        where missing) and the value of its ``other_keys`` entry; its answer's rows are
        ``rows_read(answer, fields)``."""
        self._read_with(keys=[*map(drone_key, drone_ids), *other_keys], args=fields, client=pipe)

    @staticmethod
    def rows_read(
        flat: list[str | None], fields: Sequence[str]
    ) -> list[tuple[list[str | None], str | None]]:
        width = len(fields) + 1
        return [(flat[i : i + width - 1], flat[i + width - 1]) for i in range(0, len(flat), width)]

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

    def announce_alerts(self, events: Sequence[bytes]) -> None:
        if events:
            self._r.publish(ALERTS_LIVE, b"[" + b",".join(events) + b"]")

    def seed_stations(self, stations: Sequence[Station]) -> None:
        values: list[Any] = []
        for s in stations:
            values += (s.lon, s.lat, s.code)
        self._r.geoadd(STATIONS_GEO, values)
