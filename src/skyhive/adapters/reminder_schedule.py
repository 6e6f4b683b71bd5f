"""The reminder schedule in Redis (the ``ReminderSchedule`` port): ``alerts:{reminders}`` (ZSET
alert id → due epoch seconds) and ``alerts:{reminders}:counts`` (HASH alert id →
``<start ms>:<reminders sent>``), so a restart forgets nothing. The scripts touch both: one
hash tag keeps them in one slot on a Redis Cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skyhive.adapters.redis_client import LuaScript, RedisClient

REMINDERS = "alerts:{reminders}"
REMINDER_COUNTS = "alerts:{reminders}:counts"

# Take the due reminders (at most ARGV[3]) and lease them until ARGV[2]; returns
# [id, "start:count", ...]. A missing count starts at ARGV[4] (ms) with none sent.
_CLAIM_DUE = LuaScript(
    """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m)
  local v = redis.call('HGET', KEYS[2], m)
  if not v then
    v = ARGV[4] .. ':0'
    redis.call('HSET', KEYS[2], m, v)
  end
  table.insert(out, m)
  table.insert(out, v)
end
return out
"""
)
# Schedule ARGV[1]'s first reminder at ARGV[2] unless it is scheduled already.
_SCHEDULE = LuaScript(
    """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. ':0')
return 1
"""
)
# A reminder is done: count it and set the next one, unless the schedule changed meanwhile
# (dropped, or dropped and started again).
_REMINDED = LuaScript(
    """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], 'XX', ARGV[4], ARGV[1])
return 1
"""
)
_KEYS = [REMINDERS, REMINDER_COUNTS]


class RedisReminderSchedule:
    def __init__(self, client: RedisClient) -> None:
        """``client`` must decode responses (str)."""
        self._r: Any = client  # redis-py's response types are too loose to be useful here

    def schedule(self, alert_id: str, due: float, start_ms: int) -> bool:
        return bool(_SCHEDULE(self._r, _KEYS, [alert_id, due, start_ms]))

    def claim_due(self, now: float, lease_until: float, limit: int) -> list[tuple[str, str]]:
        raw = _CLAIM_DUE(self._r, _KEYS, [now, lease_until, limit, int(now * 1000)])
        return [(str(raw[i]), str(raw[i + 1])) for i in range(0, len(raw), 2)]

    def reminded(self, alert_id: str, count: str, new_count: str, next_due: float) -> bool:
        return bool(_REMINDED(self._r, _KEYS, [alert_id, count, new_count, next_due]))

    def release(self, alert_ids: Sequence[str], due: float) -> None:
        if alert_ids:
            self._r.zadd(REMINDERS, dict.fromkeys(alert_ids, due), xx=True)

    def drop(self, alert_id: str) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.zrem(REMINDERS, alert_id)
        pipe.hdel(REMINDER_COUNTS, alert_id)
        pipe.execute()
