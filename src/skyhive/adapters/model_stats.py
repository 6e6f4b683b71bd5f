"""Stream models' counters and values in Redis (the ``ModelStats`` port), for the API's
``/metrics`` (another process): a hash per model, ``models:stats:{<model>}``, counters
``count:<name>`` added to (several ``models`` processes add up, a restart loses nothing) and
values ``value:<name>`` set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skyhive.adapters.redis_client import RedisClient
from skyhive.ports.stream_model import ModelCounts

COUNT = "count:"
VALUE = "value:"


def stats_key(model: str) -> str:
    return f"models:stats:{{{model}}}"


class RedisModelStats:
    def __init__(self, client: RedisClient) -> None:
        """``client`` may decode responses or not (the API reads with its short-timeout
        client, which does not)."""
        self._r: Any = client  # redis-py's response types are too loose to be useful here

    def report(self, model: str, stats: ModelCounts) -> None:
        key = stats_key(model)
        pipe = self._r.pipeline(transaction=False)
        for name, n in stats.counts.items():
            if n:
                pipe.hincrby(key, COUNT + name, n)
        if stats.values:
            pipe.hset(key, mapping={VALUE + k: repr(float(v)) for k, v in stats.values.items()})
        pipe.execute()

    def read(self, models: Sequence[str]) -> dict[str, ModelCounts]:
        if not models:
            return {}
        pipe = self._r.pipeline(transaction=False)
        for m in models:
            pipe.hgetall(stats_key(m))
        out = {}
        for m, raw in zip(models, pipe.execute(), strict=True):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            if fields:
                counts = {k[len(COUNT) :]: int(v) for k, v in fields.items() if k.startswith(COUNT)}
                values = {
                    k[len(VALUE) :]: float(v) for k, v in fields.items() if k.startswith(VALUE)
                }
                out[m] = ModelCounts(counts, values)
        return out


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
