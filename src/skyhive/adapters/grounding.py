"""Grounded drones in Redis (the ``Grounding`` port): one hash, ``grounded``, drone → the ids
of the alerts grounding it (space-separated), so the dispatcher learns which candidates are
grounded in the same round trip as their live state (``dispatch_queue.fleet_view``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skyhive.adapters.redis_client import LuaScript, RedisClient

GROUNDED = "grounded"

# Add (ARGV[3] == '1') or take away one alert id of a drone's list, dropping the field when
# the list is empty. KEYS: the hash; ARGV: drone id, alert id, '1' or '0'.
_SET = LuaScript(
    """
local ids, seen = {}, false
for id in string.gmatch(redis.call('HGET', KEYS[1], ARGV[1]) or '', '%S+') do
  if id == ARGV[2] then seen = true end
  if id ~= ARGV[2] or ARGV[3] == '1' then ids[#ids + 1] = id end
end
if ARGV[3] == '1' and not seen then ids[#ids + 1] = ARGV[2] end
if #ids == 0 then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return redis.call('HSET', KEYS[1], ARGV[1], table.concat(ids, ' '))
"""
)


def alert_ids(raw: str | bytes | None) -> list[str]:
    """A drone's field of the hash, as alert ids."""
    if raw is None:
        return []
    return (raw.decode() if isinstance(raw, bytes) else raw).split()


class RedisGrounding:
    def __init__(self, client: RedisClient) -> None:
        self._r: Any = client

    def set(self, changes: Sequence[tuple[str, str, bool]]) -> None:
        if changes:
            pipe = self._r.pipeline(transaction=False)
            for drone_id, alert_id, on in changes:
                _SET(pipe, [GROUNDED], [drone_id, alert_id, "1" if on else "0"])
            pipe.execute()

    def of_many(self, drone_ids: Sequence[str]) -> dict[str, list[str]]:
        ids = list(drone_ids)
        if not ids:
            return {}
        rows = zip(ids, self._r.hmget(GROUNDED, ids), strict=True)
        return {d: alert_ids(raw) for d, raw in rows if raw}

    def all(self) -> dict[str, list[str]]:
        return {str(d): alert_ids(raw) for d, raw in self._r.hgetall(GROUNDED).items()}
