"""The active alert of each (drone, type) in Redis (the ``ActiveAlerts`` port):
``alertstate:{<drone>}`` hashes type → ``id|severity|state``, so the processor never queries
MongoDB to know what is open; the existence of the hash says whether a drone has any."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skyhive.adapters.redis_client import LuaScript, RedisClient
from skyhive.domain.alert_lifecycle import ActiveAlert, Key
from skyhive.ports.active_alerts import AlertSwap

# Replace a drone's active alert of one type only if it is still the one expected, keeping a
# person's acknowledgement of it.
# KEYS: alertstate hash; ARGV: type, expected ('' = none), new ('' = delete).
_SWAP = LuaScript(
    """
local function id_of(v)
  return string.match(v, '^(.*)|[^|]*|[^|]*$') or string.match(v, '^(.*)|[^|]*$') or v
end
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if id_of(cur) ~= id_of(ARGV[2]) then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
local new = ARGV[3]
local state = string.match(cur, '|(acknowledged)$')
if state and id_of(cur) == id_of(new) then
  new = (string.gsub(new, '|[^|]*$', '|' .. state))  -- keep a person's acknowledgement
end
redis.call('HSET', KEYS[1], ARGV[1], new)
return 1
"""
)


def alert_state_key(drone_id: str) -> str:
    return f"alertstate:{{{drone_id}}}"


class RedisActiveAlerts:
    def __init__(self, client: RedisClient) -> None:
        """``client`` must decode responses (str)."""
        self._r: Any = client  # redis-py's response types are too loose to be useful here

    def get_many(self, drone_ids: Sequence[str]) -> dict[Key, ActiveAlert]:
        if not drone_ids:
            return {}
        pipe = self._r.pipeline(transaction=False)
        for d in drone_ids:
            pipe.hgetall(alert_state_key(d))
        out: dict[Key, ActiveAlert] = {}
        for d, state in zip(drone_ids, pipe.execute(), strict=True):
            for alert_type, raw in state.items():
                out[(d, alert_type)] = ActiveAlert.decode(raw)
        return out

    def get(self, drone_id: str, alert_type: str) -> ActiveAlert | None:
        raw = self._r.hget(alert_state_key(drone_id), alert_type)
        return ActiveAlert.decode(str(raw)) if raw else None

    def swap(self, swaps: Sequence[AlertSwap]) -> None:
        if swaps:
            pipe = self._r.pipeline(transaction=False)
            self.queue_swap(pipe, swaps)
            pipe.execute()

    def queue_swap(self, pipe: Any, swaps: Sequence[AlertSwap]) -> None:
        """:meth:`swap` on a pipeline the caller runs."""
        for s in swaps:
            args = [
                s.type,
                s.expected.encode() if s.expected else "",
                s.new.encode() if s.new else "",
            ]
            _SWAP(pipe, [alert_state_key(s.drone_id)], args)

    def put(self, drone_id: str, alert_type: str, active: ActiveAlert) -> None:
        self._r.hset(alert_state_key(drone_id), alert_type, active.encode())

    def remove(self, drone_id: str, alert_type: str) -> None:
        self._r.hdel(alert_state_key(drone_id), alert_type)
