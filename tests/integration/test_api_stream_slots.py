"""Stream slots per identity: one key filling its own slots leaves the others theirs, so
nobody can lock the dashboard out; the process-wide cap still holds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from auth_helpers import make_key
from skyhive.api import create_app, stream
from skyhive.wiring import Clients

LIVE_URL = "/api/v1/stream/live"
ALERTS_URL = "/api/v1/stream/alerts"


def with_key(app: Flask, clients: Clients) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(clients, 'viewer')}"
    return client


@pytest.fixture
def opened() -> Iterator[list[TestResponse]]:
    """Streams to close at the end, last opened first (each holds its request context)."""
    responses: list[TestResponse] = []
    yield responses
    for resp in reversed(responses):
        with contextlib.suppress(Exception):
            resp.close()


def open_stream(client: FlaskClient, opened: list[TestResponse], url: str = LIVE_URL) -> int:
    resp = client.get(url, buffered=False)
    if resp.status_code == 200:
        opened.append(resp)
    else:
        resp.close()
    return int(resp.status_code)


def error(client: FlaskClient, url: str = LIVE_URL) -> tuple[int, str, str]:
    resp = client.get(url)
    err = orjson.loads(resp.data)["error"]
    assert err["code"] == resp.status_code
    return resp.status_code, err["message"], resp.headers.get("Retry-After", "")


def test_one_identity_filling_its_slots_does_not_lock_out_another(
    clients: Clients, opened: list[TestResponse]
) -> None:
    per_identity = clients.settings.http.streams_per_identity
    assert per_identity < stream.MAX_STREAM_CLIENTS
    app = create_app(clients.settings, clients)
    greedy, dashboard = with_key(app, clients), with_key(app, clients)

    for url in (LIVE_URL, ALERTS_URL)[:per_identity]:
        assert open_stream(greedy, opened, url) == 200
    status, message, retry_after = error(greedy)
    assert status == 429 and f"at most {per_identity}" in message and retry_after
    assert error(greedy, ALERTS_URL)[0] == 429  # both streams count

    assert open_stream(dashboard, opened) == 200

    # A slot given back can be taken again by its identity (closed last-first: each open
    # stream holds its request context).
    opened.pop().close()  # the dashboard's
    opened.pop().close()  # the greedy key's last
    assert open_stream(greedy, opened) == 200


def test_the_process_wide_cap_still_holds(
    clients: Clients, opened: list[TestResponse], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "MAX_STREAM_CLIENTS", 3)
    app = create_app(clients.settings, clients)
    first, second, third = (with_key(app, clients) for _ in range(3))
    assert [open_stream(first, opened), open_stream(first, opened)] == [200, 200]
    assert open_stream(second, opened) == 200
    status, message, retry_after = error(third)
    assert status == 503 and "at most 3" in message and retry_after == "5"


def test_addresses_are_identities_when_there_is_no_key() -> None:
    """Below the auth layer (no ``g.rate_key``), the slots are per address."""
    slots = stream.Slots(total=4)
    assert slots.acquire("ip:192.0.2.1", 2) is None
    assert slots.acquire("ip:192.0.2.1", 2) is None
    assert slots.acquire("ip:192.0.2.1", 2) == "identity"
    assert slots.acquire("ip:192.0.2.2", 2) is None
    assert slots.acquire("key:k1", 2) is None
    assert slots.acquire("key:k2", 2) == "total"
    slots.release("ip:192.0.2.1")
    assert slots.held("ip:192.0.2.1") == 1
    assert slots.acquire("key:k2", 2) is None
    with pytest.raises(ValueError, match="no stream slot"):
        slots.release("key:nobody")
