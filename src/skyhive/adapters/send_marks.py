"""The notifiers' send marks in Redis (the ``SendMarks`` port): ``notify:done:{record id}``
for each message finished (kept longer than an entry can wait in the alerts stream), and
``notify:throttle:{slot}`` holding the record id of the message that took the slot."""

from __future__ import annotations

from typing import Any

from skyhive.adapters.redis_client import RedisClient

THROTTLE_PREFIX = "notify:throttle"
DONE_PREFIX = "notify:done"
DONE_TTL_S = 7 * 86400


class RedisSendMarks:
    def __init__(self, client: RedisClient) -> None:
        """``client`` must decode responses (str)."""
        self._r: Any = client  # redis-py's response types are too loose to be useful here

    def is_done(self, record_id: str) -> bool:
        return bool(self._r.exists(f"{DONE_PREFIX}:{record_id}"))

    def mark_done(self, record_id: str) -> None:
        self._r.set(f"{DONE_PREFIX}:{record_id}", 1, ex=DONE_TTL_S)

    def take_slot(self, slot: str, record_id: str, ttl_ms: int, *, force: bool = False) -> bool:
        key = f"{THROTTLE_PREFIX}:{slot}"
        if force:
            self._r.set(key, record_id, px=ttl_ms)
            return True
        for _ in range(3):  # the slot may expire between the two commands
            if self._r.set(key, record_id, px=ttl_ms, nx=True):
                return True
            holder = self._r.get(key)
            if holder is not None:
                return bool(holder == record_id)
        return True
