"""Rate limits per identity against the real Redis: a 429 with ``Retry-After`` in the app's
error format, one count per identity shared by every API process, probes exempt, and the
limiter failing open (with a warning) when Redis is down."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient

from auth_helpers import make_key
from skyhive.api import create_app
from skyhive.api.ratelimit import RateLimiter
from skyhive.embedded import free_port
from skyhive.settings import RateLimitConfig, Settings
from skyhive.wiring import Clients

# Per minute, so a slow run cannot slide the window past the requests under test.
LIMITS = {"per_key": "5/minute", "per_drone": "3/minute", "per_ip": "4/minute"}
VIEWER_PATH = "/api/v1/openapi.json"  # a viewer's read that touches no store but the key's


@pytest.fixture
def limited(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Clients]]:
    made: list[Clients] = []

    def make(**rate_limit: Any) -> Clients:
        clients = Clients(make_settings(rate_limit={**LIMITS, **rate_limit}))
        made.append(clients)
        return clients

    yield make
    for c in made:
        c.close()


def with_key(app: Flask, key: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def refusal(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 429, resp.data[:300]
    assert resp.mimetype == "application/json"
    err: dict[str, Any] = orjson.loads(resp.data)["error"]
    assert err["code"] == 429 and "limit" in err["message"], err
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    return err


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window", "sliding-window-counter"])
def test_each_key_has_its_own_limit(limited: Callable[..., Clients], strategy: str) -> None:
    clients = limited(strategy=strategy)
    app = create_app(clients.settings, clients)
    first, second = with_key(app, make_key(clients, "viewer")), with_key(app, make_key(clients))
    for _ in range(5):
        assert first.get(VIEWER_PATH).status_code == 200
    assert "5 per 1 minute" in refusal(first.get(VIEWER_PATH))["message"]
    assert second.get(VIEWER_PATH).status_code == 200  # another identity, its own count


def test_the_count_is_shared_by_every_api_process(limited: Callable[..., Clients]) -> None:
    """Two apps with their own limiters and clients, as two `skyhive api` processes."""
    clients = limited()
    other = Clients(clients.settings)
    try:
        key = make_key(clients, "viewer")
        one = with_key(create_app(clients.settings, clients), key)
        two = with_key(create_app(other.settings, other), key)
        for client in (one, two, one, two, one):
            assert client.get(VIEWER_PATH).status_code == 200
        refusal(two.get(VIEWER_PATH))
        refusal(one.get(VIEWER_PATH))
    finally:
        other.close()


def test_requests_refused_by_auth_count_against_the_address(
    limited: Callable[..., Clients],
) -> None:
    clients = limited()
    app = create_app(clients.settings, clients)
    anonymous = app.test_client()
    for _ in range(4):
        assert anonymous.get(VIEWER_PATH).status_code == 401
    refusal(anonymous.get(VIEWER_PATH))
    # Another address is another identity, and a key's requests are not the address's.
    stranger = app.test_client()
    stranger.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert stranger.get(VIEWER_PATH).status_code == 401
    assert with_key(app, make_key(clients, "viewer")).get(VIEWER_PATH).status_code == 200


def test_probes_are_never_limited(limited: Callable[..., Clients]) -> None:
    clients = limited(per_ip="1/minute")
    client = create_app(clients.settings, clients).test_client()
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)  # not 429, whatever the stores say


def test_drones_keys_and_addresses_have_their_own_limits(
    make_settings: Callable[..., Settings],
) -> None:
    """The identity's kind picks the limit (``drone:`` ingest, ``key:``, ``ip:``)."""
    settings = make_settings()
    limiter = RateLimiter(RateLimitConfig(**LIMITS), settings.redis_url, settings.redis_cluster)
    for identity, allowed in (("drone:d1", 3), ("key:k1", 5), ("ip:192.0.2.1", 4)):
        for _ in range(allowed):
            assert limiter.check(identity) is None, identity
        refused = limiter.check(identity)
        assert refused is not None and 1 <= refused.retry_after_s <= 60, identity
    assert limiter.check("drone:d2") is None


def test_redis_down_fails_open_with_one_warning(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rate_limit={**LIMITS, "per_ip": "1/minute", "breaker_s": 30},
    )
    down = Clients(settings)
    try:
        client = create_app(settings, down).test_client()
        with caplog.at_level(logging.WARNING, logger="skyhive.api.ratelimit"):
            for _ in range(5):  # over the limit of 1, but nothing can count: let through
                started = time.monotonic()
                assert client.get("/login").status_code == 200
                assert time.monotonic() - started < 2.0
        warnings = [r for r in caplog.records if r.name == "skyhive.api.ratelimit"]
        assert len(warnings) == 1 and "not enforced" in warnings[0].getMessage()
    finally:
        down.close()
