"""Rate limits per identity, counted in Redis so that every API process shares them.

The identity is who the auth layer found (``g.rate_key``: ``key:<key id>`` or
``drone:<id>``), else the client's address (``ip:<addr>``); each kind has its own limits
(``settings.rate_limit``). Counting is the ``limits`` library's (its Redis storage, one script
call per request, keys ``ratelimit:*``), not a hand-written counter.

Every request but the probes (``/healthz``, ``/readyz``, ``/metrics``) is counted once: after
the auth hook when it let the request through, or, when a hook before ours answered (auth
refused it, say), against the address as the answer goes out, so floods of refused requests
meet the limit too.

Redis down: limiting fails open. The API stays up for the routes that don't need Redis, and
a limiter that turned every request into an error would be the outage. A failure switches
limiting off for ``breaker_s`` (each request would otherwise wait out the timeout again),
with one warning.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.errors import ConfigurationError, StorageError
from limits.storage import RedisClusterStorage, RedisStorage
from limits.strategies import STRATEGIES
from limits.strategies import RateLimiter as RateLimiterStrategy
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from skyhive.api.errors import error_response
from skyhive.api.responses import EXTENSION_KEY
from skyhive.settings import RateLimitConfig

log = logging.getLogger(__name__)

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# The dashboard's own files (~20 per page, served from the package, cached by the browser):
# counted per IP, two page loads within a second (a reload) went over the anonymous limit and
# the page never became ready.
EXEMPT_PREFIX = "/dashboard/static/"
KEY_PREFIX = "ratelimit"
_EXTENSION = "skyhive.rate_limiter"
_COUNTED = "skyhive_rate_counted"
_WARN_EVERY_S = 10.0


def client_identity() -> str:
    """Who a request counts against: the auth layer's ``g.rate_key``, else its address.
    Streams use the same identity for their slots (``api/stream.py``)."""
    key = g.get("rate_key")
    return str(key) if key else f"ip:{request.remote_addr or 'unknown'}"


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: RateLimitItem
    retry_after_s: int


class RateLimiter:
    def __init__(self, config: RateLimitConfig, redis_url: str, cluster: bool = False) -> None:
        timeout = config.timeout_ms / 1000
        # Its own client: a short timeout and no retries, so a dead Redis costs one request
        # a fraction of a second, after which the breaker skips it. On a Redis Cluster, the
        # library's cluster storage (each counter is one key: no slot spans).
        # Made at the first request (a cluster's storage connects as it is made).
        kind: type[RedisStorage] = RedisStorage
        if cluster:
            kind = RedisClusterStorage
            scheme, sep, rest = redis_url.partition("://")
            redis_url = f"{scheme}+cluster{sep}{rest}"

        def make() -> RateLimiterStrategy:
            storage = kind(
                redis_url,
                key_prefix=KEY_PREFIX,
                wrap_exceptions=True,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
            )
            return STRATEGIES[config.strategy](storage)

        self._make_strategy = make
        self._made: RateLimiterStrategy | None = None
        self._limits = {
            "key": parse_many(config.per_key),
            "drone": parse_many(config.per_drone),
            "ip": parse_many(config.per_ip),
        }
        self._breaker_s = config.breaker_s
        self._lock = threading.Lock()
        self._skip_until = 0.0
        self._warned_at = -math.inf

    def limits_for(self, identity: str) -> list[RateLimitItem]:
        kind = identity.split(":", 1)[0]
        return self._limits.get(kind, self._limits["key"])

    def check(self, identity: str) -> Refusal | None:
        """Count one request of ``identity``; the refusal if it is over a limit."""
        if time.monotonic() < self._skip_until:
            return None
        try:
            for item in self.limits_for(identity):
                if not self._strategy().hit(item, identity):
                    return Refusal(item, self._retry_after(item, identity))
        except (
            StorageError,
            ConfigurationError,
            RedisError,
            RedisClusterException,
            OSError,
        ) as exc:
            self._fail_open(exc)
        return None

    def _strategy(self) -> RateLimiterStrategy:
        if self._made is None:
            self._made = self._make_strategy()
        return self._made

    def _retry_after(self, item: RateLimitItem, identity: str) -> int:
        """Whole seconds until the window lets one more request in (at least 1)."""
        reset_at = self._strategy().get_window_stats(item, identity).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def _fail_open(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self._skip_until = now + self._breaker_s
            if now - self._warned_at < _WARN_EVERY_S:
                return
            self._warned_at = now
        cause = exc.__cause__ if isinstance(exc, StorageError) and exc.__cause__ else exc
        log.warning(
            "rate limits are not enforced for %.0fs: Redis failed: %s", self._breaker_s, cause
        )


def _refused(refusal: Refusal) -> Response:
    seconds = refusal.retry_after_s
    return error_response(
        429,
        f"too many requests: the limit is {refusal.limit} for this client; retry in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


def _count() -> Refusal | None:
    g.setdefault(_COUNTED, True)
    if request.path in EXEMPT_PATHS or request.path.startswith(EXEMPT_PREFIX):
        return None
    limiter: RateLimiter = current_app.extensions[_EXTENSION]
    return limiter.check(client_identity())


def _before() -> Response | None:
    refusal = _count()
    return _refused(refusal) if refusal is not None else None


def _after(response: Response) -> Response:
    """A request whose before-request chain ended before ours (refused by auth, say)."""
    if g.get(_COUNTED):
        return response
    refusal = _count()
    return _refused(refusal) if refusal is not None else response


def install_rate_limits(app: Flask) -> None:
    """Install after the auth hook (``install_auth``), which sets ``g.rate_key``: Flask runs
    before-request functions in the order they were registered. Nothing if disabled."""
    settings = app.extensions[EXTENSION_KEY].settings
    config: RateLimitConfig = settings.rate_limit
    if not config.enabled:
        return
    app.extensions[_EXTENSION] = RateLimiter(
        config, settings.redis_url_or_default(), settings.redis_cluster
    )
    app.before_request(_before)
    app.after_request(_after)


def install_limits(app: Flask) -> None:
    """Every per-request limit of the API, in order: rate limits (cheap, so a flood is
    refused before anything else), then body limits (before any hook or view reads a body).
    Call right after the auth hook is installed (``g.rate_key``) and before any hook that
    reads the body."""
    from skyhive.api.body_limit import install_body_limits

    install_rate_limits(app)
    install_body_limits(app)
