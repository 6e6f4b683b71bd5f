"""Declared flights in Redis, for the processor's hot path: two hashes, drone → its active
declaration (JSON) and drone → what is remembered of its conformance, read for a whole batch
with one HMGET each in one pipeline. Both carry the hash tag ``{conformance}``, so the
script that drops a declaration touches one slot on a Redis Cluster (both are one master's
there, as ``fleet:geo`` is). MongoDB keeps the declaration with its delivery (the truth);
the tracker writes it to both."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from skyhive.adapters.drone_memory import HEARD
from skyhive.adapters.redis_client import LuaScript
from skyhive.domain.conformance import Declaration, Watch

DECLARED = "conformance:{flights}:declared"
WATCH = "conformance:{flights}:watch"
SWEEP_LOCK = "conformance:{flights}:sweep"

# Forget a drone's declaration and watch only if the declaration is still the delivery's
# (the drone may have been declared for the next one since).
# KEYS: declared, watch; ARGV: drone id, delivery id.
_DROP = LuaScript(
    """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and cjson.decode(v)['delivery_id'] == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
"""
)


class RedisDeclarations:
    def __init__(self, redis: Any, status_key: str) -> None:
        """``status_key``: the dispatch queue's status hash (delivery → status)."""
        self._r = redis
        self._status = status_key

    def declare(self, declarations: Sequence[Declaration]) -> None:
        if declarations:
            self._r.hset(DECLARED, mapping={d.drone_id: d.model_dump_json() for d in declarations})

    def read(self, drone_ids: Sequence[str]) -> dict[str, tuple[Declaration, Watch | None]]:
        if not drone_ids:
            return {}
        ids = list(drone_ids)
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(DECLARED, ids)
        pipe.hmget(WATCH, ids)
        declared, watched = pipe.execute()
        out = {}
        for drone_id, d, w in zip(ids, declared, watched, strict=True):
            if d is not None:
                watch = Watch.decode(orjson.loads(w)) if w is not None else None
                out[drone_id] = (Declaration.model_validate_json(d), watch)
        return out

    def save(self, watches: Mapping[str, Watch]) -> None:
        if watches:
            mapping = {d: orjson.dumps(w.encode()) for d, w in watches.items()}
            self._r.hset(WATCH, mapping=mapping)

    def drop(self, drone_id: str, delivery_id: str) -> None:
        _DROP(self._r, [DECLARED, WATCH], [drone_id, delivery_id])

    def silent(self, before: float) -> dict[str, float]:
        drones = [str(d) for d in self._r.hkeys(DECLARED)]
        if not drones:
            return {}
        heard = self._r.zmscore(HEARD, drones)
        return {
            d: float(at or 0.0)
            for d, at in zip(drones, heard, strict=True)
            if at is None or float(at) < before
        }

    def take_sweep(self, hold_ms: int) -> bool:
        return bool(self._r.set(SWEEP_LOCK, "1", nx=True, px=hold_ms))

    def statuses(self, delivery_ids: Sequence[str]) -> dict[str, str | None]:
        ids = list(delivery_ids)
        if not ids:
            return {}
        return dict(zip(ids, self._r.hmget(self._status, ids), strict=True))
