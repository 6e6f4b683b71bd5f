"""Cache-aside for the API's reads, in Redis, with invalidation by every writer.

Keys: ``cache:{<resource>/<id>}:doc`` (one document's API view, JSON) and
``cache:<resource>:list:<version>:<query>`` (a list response), both with a TTL;
``cache:<resource>:version`` is bumped by every write to the resource, so every cached list of
it is orphaned at once (and expires by its TTL).

A write also bumps the document's generation (``cache:{<resource>/<id>}:gen``: the same hash
tag as its entry, since the fill script reads one and writes the other) and deletes its
entry. A read that missed remembers the generation it saw and fills the entry only if that is
still the generation (one Lua script): a read that loaded the document just before a write
cannot put the old copy back after the write's invalidation. A list read that raced a write
stores its result under the version it started with, which nobody reads any more.

Redis trouble never becomes an API error: this client has short timeouts and no retries,
and after a failure the cache is bypassed for ``breaker_s`` (reads go straight to MongoDB
at MongoDB speed, instead of each waiting for a timeout). An invalidation that failed is
remembered, and the resource's entries are purged when Redis answers again, before anything
is read from it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import redis

from skyhive.adapters.redis_client import LuaScript, RedisClient
from skyhive.ports.clock import Clock

log = logging.getLogger(__name__)

PREFIX = "cache"
# Longer than any read can take between its miss and its fill.
GENERATION_TTL_MS = 600_000
Loader = Callable[[], bytes | None]

# Fill the entry only if the document's generation is still the one the read started from.
# KEYS: entry, generation; ARGV: generation seen ('' for none), value, TTL in ms.
_FILL = LuaScript(
    """
if (redis.call('GET', KEYS[2]) or '') == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 0
"""
)


def _id_key(resource: str, doc_id: str) -> str:
    return f"{PREFIX}:{{{resource}/{doc_id}}}:doc"


def _generation_key(resource: str, doc_id: str) -> str:
    return f"{PREFIX}:{{{resource}/{doc_id}}}:gen"


def _version_key(resource: str) -> str:
    return f"{PREFIX}:{resource}:version"


class ReadCache:
    def __init__(
        self,
        client: RedisClient,
        ttl_s: float,
        breaker_s: float,
        clock: Clock,
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self._r: Any = client
        self._clock = clock
        self._ttl_ms = int(ttl_s * 1000)
        self._breaker_s = breaker_s
        self._open_until = 0.0
        self._lock = threading.Lock()
        self._purge: set[str] = set()
        # (resource, "hit" | "miss" | "error"): the API counts them for /metrics.
        self.on_result = on_result

    # --- reads ------------------------------------------------------------------------------

    def get(self, resource: str, doc_id: str, load: Loader) -> tuple[bytes | None, bool]:
        """One document's view: (bytes, from cache?). ``load`` gives the view from MongoDB,
        or None when there is no such document (not cached: it may be created any moment)."""
        key, gen_key = _id_key(resource, doc_id), _generation_key(resource, doc_id)
        found = self._call(lambda: self._r.mget(key, gen_key))
        if found is False:
            self._count(resource, "error")
            return load(), False
        cached, generation = found
        if cached is not None:
            self._count(resource, "hit")
            return cached, True
        self._count(resource, "miss")
        value = load()
        if value is not None:
            args = [generation or b"", value, self._ttl_ms]
            self._call(lambda: _FILL(self._r, [key, gen_key], args))
        return value, False

    def get_list(self, resource: str, query: str, load: Callable[[], bytes]) -> tuple[bytes, bool]:
        """A list response for ``query`` (the normalised query string): (bytes, from cache?)."""
        version = self._call(lambda: self._r.get(_version_key(resource)))
        if version is False:
            self._count(resource, "error")
            return load(), False
        digest = hashlib.blake2b(query.encode(), digest_size=12).hexdigest()
        key = f"{PREFIX}:{resource}:list:{int(version or 0)}:{digest}"
        cached = self._call(lambda: self._r.get(key))
        if isinstance(cached, bytes):
            self._count(resource, "hit")
            return cached, True
        self._count(resource, "miss" if cached is None else "error")
        value = load()
        if cached is None:
            self._call(lambda: self._r.set(key, value, px=self._ttl_ms))
        return value, False

    # --- writes -----------------------------------------------------------------------------

    def invalidate(self, resource: str, doc_ids: Iterable[str] = ()) -> None:
        """After a write to ``resource`` (to these documents): their entries and every list
        of the resource are stale. Never raises."""

        def run() -> None:
            pipe = self._r.pipeline(transaction=False)
            for doc_id in doc_ids:
                gen_key = _generation_key(resource, doc_id)
                pipe.incr(gen_key)
                pipe.pexpire(gen_key, GENERATION_TTL_MS)
                pipe.delete(_id_key(resource, doc_id))
            pipe.incr(_version_key(resource))
            pipe.execute()

        if self._call(run) is False:
            with self._lock:
                self._purge.add(resource)

    # --- Redis calls, guarded -----------------------------------------------------------------

    def _call(self, fn: Callable[[], Any]) -> Any:
        """``fn()``'s result, or False if Redis is failing (now or within ``breaker_s``)."""
        if self._clock.monotonic() < self._open_until:
            return False
        try:
            if self._purge:
                self._purge_lost()
            return fn()
        except redis.RedisError as exc:
            self._open_until = self._clock.monotonic() + self._breaker_s
            log.warning("read cache bypassed for %.0fs: %s", self._breaker_s, exc)
            return False

    def _purge_lost(self) -> None:
        """Drop every entry of the resources whose invalidation was lost in an outage."""
        with self._lock:
            resources, self._purge = self._purge, set()
        try:
            for resource in resources:
                keys = list(self._r.scan_iter(match=_id_key(resource, "*"), count=1000))
                pipe = self._r.pipeline(transaction=False)
                for key in keys:  # one by one: on a cluster they are in many slots
                    pipe.delete(key)
                pipe.incr(_version_key(resource))
                pipe.execute()
        except redis.RedisError:
            with self._lock:
                self._purge |= resources
            raise

    def _count(self, resource: str, result: str) -> None:
        if self.on_result is not None:
            self.on_result(resource, result)
