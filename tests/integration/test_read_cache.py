"""The read cache (cache-aside in Redis) through the API: hits and misses, invalidation by
every kind of write (including those made outside the API process: the dispatcher's recorder,
the tracker, billing), a write racing a read, and a Redis outage (a Redis server of this test's
own, stopped and restarted)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from api_asserts import assert_error, body
from billing_data import delivered, order, world
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from auth_helpers import api_client
from manual_clock import ManualClock
from redis_access import redis_of
from skyhive.domain.billing import Period
from skyhive.embedded import Server, free_port, redis_server
from skyhive.settings import Settings
from skyhive.wiring import Clients

OCT = Period(2026, 10)
IN_OCT = datetime(2026, 10, 12, 15, tzinfo=UTC)
AFTER_OCT = datetime(2026, 11, 1, 1, tzinfo=UTC)


@pytest.fixture
def client(clients: Clients) -> FlaskClient:
    world(clients, "alice", "bob")
    return api_client(clients)


def get(client: FlaskClient, url: str) -> tuple[Any, str]:
    resp = client.get(url)
    assert resp.status_code == 200, resp.data
    return body(resp), resp.headers["X-Cache"]


def cached(client: FlaskClient, url: str) -> Any:
    """Read twice: the first read fills the cache, the second is served from it."""
    first, _ = get(client, url)
    second, source = get(client, url)
    assert (second, source) == (first, "hit")
    return first


def fresh(client: FlaskClient, url: str) -> Any:
    """The next read is a miss (the write invalidated the entry), then a hit again."""
    got, source = get(client, url)
    assert source == "miss"
    assert cached(client, url) == got
    return got


def ok(resp: TestResponse, status: int = 200) -> Any:
    assert resp.status_code == status, resp.data
    return body(resp) if resp.data else None


# --- customers ------------------------------------------------------------------------------


def test_customer_reads_hit_and_every_write_invalidates(client: FlaskClient) -> None:
    url = "/api/v1/customers/alice"
    assert cached(client, url)["name"] == "Customer alice"
    before = cached(client, "/api/v1/customers")
    ok(client.patch(url, json={"name": "Alice Ltd"}))
    assert fresh(client, url)["name"] == "Alice Ltd"
    assert [c["name"] for c in fresh(client, "/api/v1/customers")["items"]] == [
        "Alice Ltd",
        "Customer bob",
    ]
    made = ok(client.post("/api/v1/customers", json={"name": "Cy", "email": "cy@example.com"}), 201)
    assert fresh(client, "/api/v1/customers")["count"] == before["count"] + 1
    assert cached(client, f"/api/v1/customers/{made['id']}")["name"] == "Cy"
    ok(client.delete(f"/api/v1/customers/{made['id']}"), 204)
    assert client.get(f"/api/v1/customers/{made['id']}").status_code == 404
    assert fresh(client, "/api/v1/customers")["count"] == before["count"]


def test_a_missing_document_is_not_cached(client: FlaskClient, clients: Clients) -> None:
    assert client.get("/api/v1/customers/cy").status_code == 404
    clients.customers.upsert_many(
        [{"_id": "cy", "name": "Cy", "email": "cy@example.com", "created_at": IN_OCT}]
    )
    assert cached(client, "/api/v1/customers/cy")["name"] == "Cy"


# --- invoices -------------------------------------------------------------------------------


def test_invoice_reads_are_invalidated_by_payment_billing_and_overdue(
    client: FlaskClient, clients: Clients
) -> None:
    svc = world(clients, "alice", "bob")
    delivered(clients, svc, "alice", "12TH", IN_OCT)
    listing = "/api/v1/invoices"
    assert cached(client, listing)["count"] == 0
    billing = clients.billing
    billing.run(OCT, AFTER_OCT)  # a billing run, as the `billing` process makes it
    [inv] = fresh(client, listing)["items"]
    url = f"/api/v1/invoices/{inv['id']}"
    assert cached(client, url)["status"] == "pending"
    billing.mark_overdue(AFTER_OCT + timedelta(days=31))
    assert fresh(client, url)["status"] == "overdue"
    assert fresh(client, f"{listing}?status=overdue")["count"] == 1
    ok(client.post(f"{url}/pay"))
    assert fresh(client, url)["status"] == "paid"
    assert fresh(client, f"{listing}?status=overdue")["count"] == 0


def test_a_customer_key_never_shares_an_entry_with_another_caller(
    client: FlaskClient, clients: Clients
) -> None:
    svc = world(clients, "alice", "bob")
    for customer in ("alice", "bob"):
        delivered(clients, svc, customer, "12TH", IN_OCT)
    clients.billing.run(OCT, AFTER_OCT)
    alice, bob = (
        api_client(clients, "customer", c, app=client.application) for c in ("alice", "bob")
    )
    for listing in ("/api/v1/invoices", "/api/v1/deliveries"):
        assert cached(client, listing)["count"] == 2  # the staff's entry: everyone's
        got, source = get(alice, listing)
        assert source == "miss" and [i["customer_id"] for i in got["items"]] == ["alice"]
        assert cached(alice, listing) == got
        assert [i["customer_id"] for i in fresh(bob, listing)["items"]] == ["bob"]
        assert cached(client, listing)["count"] == 2
    # A document is cached once for everyone, and shown only to its own customer.
    url = "/api/v1/invoices/inv-2026-10-bob"
    assert cached(client, url)["customer_id"] == "bob"
    assert cached(bob, url)["customer_id"] == "bob"
    assert_error(alice.get(url), 404, "invoice_id")


# --- deliveries -----------------------------------------------------------------------------


def test_delivery_reads_are_invalidated_by_every_writer(
    client: FlaskClient, clients: Clients
) -> None:
    svc = world(clients, "alice")
    doc = order(svc, "alice", "12TH", datetime.now(UTC))
    did = doc.id
    url = f"/api/v1/deliveries/{did}"
    assert cached(client, url)["status"] == "pending"
    listing = "/api/v1/deliveries?customer_id=alice"
    assert cached(client, listing)["items"][0]["status"] == "pending"

    # The dispatcher's recorder writes an assignment journaled in Redis.
    now = datetime.now(UTC)
    record = {
        "drone_id": "d-1",
        "at": now.isoformat(),
        "note": "assigned to d-1",
        "fields": {
            "drone_id": "d-1",
            "return_station": "12TH",
            "eta": (now + timedelta(minutes=5)).isoformat(),
            "dispatch": {"accepted_at": now.isoformat(), "assigned_at": now.isoformat()},
        },
    }
    clients.redis_text.hset(clients.dispatch_queue.keys.journal, did, orjson.dumps(record))
    clients.deliveries.record_journal(clients.dispatch_queue.journal())
    assert fresh(client, url)["status"] == "assigned"
    assert fresh(client, listing)["items"][0]["drone_id"] == "d-1"

    # The tracker's ETA updates and transitions.
    eta = now + timedelta(minutes=9)
    clients.deliveries.set_fields_many({did: {"eta": eta}})
    assert fresh(client, url)["eta"].startswith(eta.strftime("%Y-%m-%dT%H:%M:%S"))
    clients.deliveries.transition(did, "picked_up", datetime.now(UTC), "picked up by d-1")
    assert fresh(client, url)["status"] == "picked_up"

    # The API's own writes: a new order, a cancel.
    other = ok(
        client.post(
            "/api/v1/deliveries",
            json={
                "customer_id": "alice",
                "pickup_station": "12TH",
                "destination": {"lat": 37.812, "lon": -122.262},
                "package": {"weight_kg": 1.0, "size": "small"},
            },
        ),
        201,
    )
    assert fresh(client, listing)["count"] == 2
    assert cached(client, f"/api/v1/deliveries/{other['id']}")["status"] == "pending"
    ok(client.post(f"/api/v1/deliveries/{other['id']}/cancel"))
    assert fresh(client, f"/api/v1/deliveries/{other['id']}")["status"] == "cancelled"


def test_billing_marks_the_delivery_and_invalidates_it(
    client: FlaskClient, clients: Clients
) -> None:
    svc = world(clients, "alice")
    did = delivered(clients, svc, "alice", "12TH", IN_OCT)
    url = f"/api/v1/deliveries/{did}"
    assert cached(client, url)["invoice_id"] is None
    clients.billing.run(OCT, AFTER_OCT)
    assert fresh(client, url)["invoice_id"] == "inv-2026-10-alice"


# --- stations -------------------------------------------------------------------------------


def test_stations_list_is_invalidated_when_stations_are_loaded(
    client: FlaskClient, clients: Clients
) -> None:
    count = cached(client, "/api/v1/stations")["count"]
    clients.db.stations.delete_one({"_id": "EMBR"})
    world(clients)  # the bootstrap loads the missing station again
    assert fresh(client, "/api/v1/stations")["count"] == count


# --- a write racing a read ------------------------------------------------------------------


def test_a_read_that_loaded_before_a_write_cannot_cache_the_old_copy(clients: Clients) -> None:
    cache = clients.read_cache

    def slow_load() -> bytes:
        old = b'{"v": 1}'
        cache.invalidate("things", ["t1"])  # a write lands while this read is loading
        return old

    assert cache.get("things", "t1", slow_load) == (b'{"v": 1}', False)
    # The old copy was not stored: the next read loads the current one.
    assert cache.get("things", "t1", lambda: b'{"v": 2}') == (b'{"v": 2}', False)


# --- metrics --------------------------------------------------------------------------------


def test_metrics_count_cache_results_and_the_hit_ratio(client: FlaskClient) -> None:
    cached(client, "/api/v1/customers/alice")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'skyhive_cache_reads_total{resource="customers",result="hit"}' in text
    assert 'skyhive_cache_reads_total{resource="customers",result="miss"}' in text
    [ratio] = [line for line in text.splitlines() if line.startswith("skyhive_cache_hit_ratio ")]
    assert 0 < float(ratio.split()[1]) < 1


# --- a Redis outage -------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[Server, Callable[[], Server]]]:
    """A Redis server for this test alone (the shared one keeps running), and a way to start
    it again on the same port and data."""
    port = free_port()
    servers = [redis_server(tmp_path / "redis-own", "127.0.0.1", port)]
    servers[0].start()

    def restart() -> Server:
        servers.append(redis_server(tmp_path / "redis-own", "127.0.0.1", port))
        servers[-1].start()
        return servers[-1]

    yield servers[0], restart
    for s in servers:
        if s.proc is not None and s.proc.poll() is None:
            s.stop()


def test_a_redis_outage_degrades_to_mongodb_reads_never_to_errors(
    make_settings: Callable[..., Settings], own_redis: tuple[Server, Callable[[], Server]]
) -> None:
    server, restart = own_redis
    settings = make_settings(redis_url=f"redis://127.0.0.1:{server.port}/0", cache_breaker_s=0.5)
    clients = Clients(settings)
    clock = ManualClock(datetime.now(UTC))
    clients.clock = clock  # type: ignore[misc]  # the breaker's
    try:
        world(clients, "alice")
        client = api_client(clients)
        url = "/api/v1/customers/alice"
        cached(client, url)
        server.stop()
        started = time.monotonic()
        for _ in range(20):
            got, source = get(client, url)
            assert source == "miss" and got["name"] == "Customer alice"
        assert time.monotonic() - started < 2.0  # MongoDB speed, not a timeout per read
        # A write during the outage cannot reach the cache ...
        ok(client.patch(url, json={"name": "Alice in the outage"}))
        assert get(client, url)[0]["name"] == "Alice in the outage"
        listed, _ = get(client, "/api/v1/customers")
        assert listed["items"][0]["name"] == "Alice in the outage"
        # ... so when Redis is back (with its old entry: same data dir), nothing stale is served.
        restart()
        with redis_of(settings) as r:
            stale = r.get("cache:{customers/alice}:doc")
        assert stale is not None and b"Customer alice" in stale  # what a naive cache would serve
        clock.advance(settings.cache_breaker_s)  # the breaker closes
        assert fresh(client, url)["name"] == "Alice in the outage"
        assert cached(client, "/api/v1/customers")["items"][0]["name"] == "Alice in the outage"
    finally:
        clients.close()
