"""The deliveries API against the real embedded MongoDB and Redis, through Flask's test
client; stations come from the real bootstrap. States beyond ``pending`` are set through the
real repository (the dispatcher has its own tests)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from api_asserts import assert_error, body
from customer_seed import add_customers
from flask.testing import FlaskClient

from auth_helpers import api_client
from skyhive.bootstrap import bootstrap
from skyhive.domain.deliveries import DeliveryRequest
from skyhive.domain.stations import bart_stations
from skyhive.domain.telemetry import validate_telemetry
from skyhive.wiring import Clients

URL = "/api/v1/deliveries"
STATION = next(s for s in bart_stations() if s.code == "12TH")
NEAR = {"lat": STATION.lat + 0.02, "lon": STATION.lon + 0.01}  # ~2.4 km
BASE = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(clients: Clients) -> FlaskClient:
    bootstrap(clients)
    add_customers(clients, "cust-1", "someone-else", "alice", "bob", "carol")
    return api_client(clients)


def order(**overrides: Any) -> dict[str, Any]:
    return {
        "customer_id": "cust-1",
        "pickup_station": "12TH",
        "destination": NEAR,
        "package": {"weight_kg": 1.2, "size": "small"},
        **overrides,
    }


def create(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    resp = client.post(URL, json=order(**overrides))
    assert resp.status_code == 201, resp.data
    result: dict[str, Any] = body(resp)
    return result


def to_ms(delivery: dict[str, Any]) -> dict[str, Any]:
    """Timestamps cut to milliseconds: a create answers with the time it was given, the
    store keeps milliseconds (see the report on ``DeliveryService.create``)."""

    def cut(ts: str | None) -> str | None:
        return None if ts is None else re.sub(r"(\.\d{3})\d*Z$", r"\1Z", ts)

    timeline = [{**t, "at": cut(t["at"])} for t in delivery["timeline"]]
    stamps = {k: cut(delivery[k]) for k in ("created_at", "updated_at")}
    return {**delivery, **stamps, "timeline": timeline}


def stored_count(clients: Clients) -> int:
    return clients.db.deliveries.count_documents({})


# --- create ---------------------------------------------------------------------------------


def test_create_returns_a_pending_delivery(client: FlaskClient, clients: Clients) -> None:
    resp = client.post(URL, json=order())
    assert resp.status_code == 201, resp.data
    got = body(resp)
    assert got["id"].startswith("dlv-") and resp.headers["Location"] == f"{URL}/{got['id']}"
    assert got["order_id"] is None
    assert (got["customer_id"], got["pickup_station"], got["status"]) == (
        "cust-1",
        "12TH",
        "pending",
    )
    assert got["destination"] == NEAR
    assert got["package"] == {"weight_kg": 1.2, "size": "small"}
    assert 2.0 < got["distance_km"] < 3.0
    assert float(got["price_estimate"]) > 3.5 and got["currency"] == "USD"
    assert [t["status"] for t in got["timeline"]] == ["pending"]
    assert got["created_at"].endswith("Z")
    assert to_ms(body(client.get(f"{URL}/{got['id']}"))) == to_ms(got)
    assert clients.redis_text.hget(clients.dispatch_queue.keys.status, got["id"]) == "pending"


def test_same_order_id_twice_gives_the_same_delivery(client: FlaskClient, clients: Clients) -> None:
    first = client.post(URL, json=order(order_id="o-42"))
    again = client.post(URL, json=order(order_id="o-42"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert body(first)["id"] == body(again)["id"] == "ord-o-42"
    assert to_ms(body(again))["created_at"] == to_ms(body(first))["created_at"]
    assert clients.db.deliveries.count_documents({"order_id": "o-42"}) == 1
    assert stored_count(clients) == 1
    assert clients.redis_text.hget(clients.dispatch_queue.keys.status, "ord-o-42") == "pending"
    assert clients.redis_text.zrange(clients.dispatch_queue.keys.pending, 0, -1) == ["ord-o-42"]


def test_order_id_of_another_customer_is_409(client: FlaskClient, clients: Clients) -> None:
    create(client, order_id="o-1")
    resp = client.post(URL, json=order(order_id="o-1", customer_id="someone-else"))
    assert_error(resp, 409, "order_id")
    assert b"cust-1" not in resp.data  # the other customer's delivery is not disclosed


def test_business_rejections_are_422_naming_the_field(
    client: FlaskClient, clients: Clients
) -> None:
    fleet = client.post(
        "/api/v1/fleet/drones",
        json={"drone_id": "lifter", "home_station": "12TH", "max_payload_kg": 2.5},
    )
    assert fleet.status_code == 201
    msg = assert_error(client.post(URL, json=order(pickup_station="NOPE")), 422, "pickup_station")
    assert "NOPE" in msg
    far = {"lat": STATION.lat + 0.45, "lon": STATION.lon}  # ~50 km north
    msg = assert_error(client.post(URL, json=order(destination=far)), 422, "destination")
    assert "50." in msg
    heavy = {"weight_kg": 2.6, "size": "small"}
    msg = assert_error(client.post(URL, json=order(package=heavy)), 422, "package.weight_kg")
    assert "2.5 kg" in msg
    assert stored_count(clients) == 0
    # Exactly the fleet's maximum is fine.
    create(client, package={"weight_kg": 2.5, "size": "large"})


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (order(package={"weight_kg": 1.0, "size": "huge"}), "package.size"),
        ({k: v for k, v in order().items() if k != "customer_id"}, "customer_id"),
        (order(customer_id="has space"), "customer_id"),
        (order(destination="Oakland"), "destination"),
        (order(destination={"lat": 91, "lon": 0}), "destination.lat"),
        (order(package={"weight_kg": "1", "size": "small"}), "package.weight_kg"),
        (order(package={"weight_kg": 0, "size": "small"}), "package.weight_kg"),
        (order(order_id=""), "order_id"),
        (order(priority="high"), "priority"),
    ],
)
def test_schema_errors_are_422_naming_the_field(
    client: FlaskClient, clients: Clients, payload: dict[str, Any], field: str
) -> None:
    assert_error(client.post(URL, json=payload), 422, field)
    assert stored_count(clients) == 0


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"   ", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'"order"', "application/json", 400),
        (b'{"weight": NaN}', "application/json", 400),
        (orjson.dumps(order()), "application/x-www-form-urlencoded", 415),
    ],
)
def test_malformed_bodies(
    client: FlaskClient, clients: Clients, data: bytes, content_type: str, status: int
) -> None:
    assert_error(client.post(URL, data=data, content_type=content_type), status)
    assert stored_count(clients) == 0


# --- list, get --------------------------------------------------------------------------------


@pytest.fixture
def seeded(client: FlaskClient, clients: Clients) -> list[str]:
    """Four deliveries a second apart (oldest first); the third assigned to drone d9."""
    svc = clients.delivery_service
    ids = []
    for i, customer in enumerate(("alice", "bob", "alice", "carol")):
        req = DeliveryRequest.model_validate(order(customer_id=customer))
        doc, _ = svc.create(req, now=BASE + timedelta(seconds=i))
        ids.append(doc.id)
    clients.deliveries.transition(ids[2], "assigned", BASE, "test", fields={"drone_id": "d9"})
    return ids


def listed(client: FlaskClient, query: str = "") -> list[str]:
    got = body(client.get(f"{URL}?{query}"))
    assert got["count"] == len(got["items"])
    return [d["id"] for d in got["items"]]


def test_list_newest_first_with_filters(client: FlaskClient, seeded: list[str]) -> None:
    a1, b, a2, c = seeded
    assert listed(client) == [c, a2, b, a1]
    assert listed(client, "status=pending") == [c, b, a1]
    assert listed(client, "status=assigned") == [a2]
    assert listed(client, "status=delivered") == []
    assert listed(client, "customer_id=alice") == [a2, a1]
    assert listed(client, "customer_id=alice&status=pending") == [a1]
    assert listed(client, "drone_id=d9") == [a2]
    assert listed(client, "limit=2") == [c, a2]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=lost", "status"),
        ("customer_id=no%20spaces", "customer_id"),
        ("drone_id=bad!", "drone_id"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
    ],
)
def test_list_bad_params_are_400(client: FlaskClient, query: str, field: str) -> None:
    assert_error(client.get(f"{URL}?{query}"), 400, field)


def test_unknown_delivery_is_404(client: FlaskClient) -> None:
    for resp in (
        client.get(f"{URL}/dlv-nope"),
        client.get(f"{URL}/dlv-nope/track"),
        client.post(f"{URL}/dlv-nope/cancel"),
    ):
        assert "dlv-nope" in assert_error(resp, 404, "delivery_id")


# --- cancel, track ----------------------------------------------------------------------------


def test_cancel_pending_then_again_is_409(client: FlaskClient, clients: Clients) -> None:
    did = create(client)["id"]
    resp = client.post(f"{URL}/{did}/cancel")
    assert resp.status_code == 200, resp.data
    got = body(resp)
    assert got["id"] == did and got["status"] == "cancelled"
    assert [t["status"] for t in got["timeline"]] == ["pending", "cancelled"]
    assert body(client.get(f"{URL}/{did}"))["status"] == "cancelled"
    assert clients.redis_text.hget(clients.dispatch_queue.keys.status, did) == "cancelled"
    assert clients.redis_text.zscore(clients.dispatch_queue.keys.pending, did) is None
    assert "cancelled" in assert_error(client.post(f"{URL}/{did}/cancel"), 409)


def test_cancel_after_pickup_is_409(client: FlaskClient, clients: Clients) -> None:
    did = create(client)["id"]
    now = datetime.now(UTC)
    clients.deliveries.transition(did, "assigned", now, "test", fields={"drone_id": "d1"})
    clients.deliveries.transition(did, "picked_up", now, "test")
    assert "picked_up" in assert_error(client.post(f"{URL}/{did}/cancel"), 409)
    assert body(client.get(f"{URL}/{did}"))["status"] == "picked_up"


def test_track_pending_has_no_drone_yet(client: FlaskClient) -> None:
    did = create(client)["id"]
    assert body(client.get(f"{URL}/{did}/track")) == {
        "id": did,
        "status": "pending",
        "drone_id": None,
        "drone": None,
        "remaining_km": None,
        "eta": None,
    }


def test_track_assigned_gives_remaining_distance(client: FlaskClient, clients: Clients) -> None:
    created = create(client)
    did = created["id"]
    now = datetime.now(UTC)
    clients.deliveries.transition(did, "assigned", now, "test", fields={"drone_id": "d1"})
    reading = {
        "drone_id": "d1",
        "seq": 1,
        "ts": int(now.timestamp() * 1000),
        "lat": STATION.lat,
        "lon": STATION.lon,
        "battery_pct": 90.0,
    }
    clients.live.apply([validate_telemetry(reading)], now.isoformat())
    got = body(client.get(f"{URL}/{did}/track"))
    assert got["status"] == "assigned" and got["drone"]["drone_id"] == "d1"
    # The drone waits at the pickup station: what is left is the pickup → destination leg.
    assert got["remaining_km"] == pytest.approx(created["distance_km"], abs=0.01)
    assert got["eta_seconds"] > 0


# --- access -----------------------------------------------------------------------------------


def as_role(client: FlaskClient, clients: Clients, role: str, customer: str | None = None) -> Any:
    """Another client of the same app, with a key of ``role``."""
    return api_client(clients, role, customer, app=client.application)


def test_every_operation_needs_a_key(client: FlaskClient) -> None:
    did = create(client)["id"]
    anonymous = client.application.test_client()
    for resp in (
        anonymous.post(URL, json=order()),
        anonymous.get(URL),
        anonymous.get(f"{URL}/{did}"),
        anonymous.get(f"{URL}/{did}/track"),
        anonymous.post(f"{URL}/{did}/cancel"),
    ):
        assert_error(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert body(client.get(f"{URL}/{did}"))["status"] == "pending"


def test_viewers_read_operators_order_and_cancel(client: FlaskClient, clients: Clients) -> None:
    viewer = as_role(client, clients, "viewer")
    operator = as_role(client, clients, "operator")
    assert_error(viewer.post(URL, json=order()), 403)
    assert stored_count(clients) == 0
    did = body(operator.post(URL, json=order()))["id"]
    assert [d["id"] for d in body(viewer.get(URL))["items"]] == [did]
    assert body(viewer.get(f"{URL}/{did}"))["id"] == did
    assert body(viewer.get(f"{URL}/{did}/track"))["status"] == "pending"
    assert_error(viewer.post(f"{URL}/{did}/cancel"), 403)
    assert body(operator.post(f"{URL}/{did}/cancel"))["status"] == "cancelled"


def test_a_customer_key_orders_only_for_its_own_customer(
    client: FlaskClient, clients: Clients
) -> None:
    alice = as_role(client, clients, "customer", "alice")
    resp = alice.post(URL, json=order(customer_id="alice", order_id="a-1"))
    assert resp.status_code == 201, resp.data
    assert body(resp)["customer_id"] == "alice"
    assert alice.post(URL, json=order(customer_id="alice", order_id="a-1")).status_code == 200
    assert "own customer" in assert_error(
        alice.post(URL, json=order(customer_id="bob")), 403, "customer_id"
    )
    assert stored_count(clients) == 1
    # An order id another customer used stays a 409, naming nothing of theirs.
    create(client, customer_id="bob", order_id="b-1")
    resp = alice.post(URL, json=order(customer_id="alice", order_id="b-1"))
    assert_error(resp, 409, "order_id")
    assert b"bob" not in resp.data
    # Cancelling is for operators, even one's own order.
    assert_error(alice.post(f"{URL}/ord-a-1/cancel"), 403)


def test_a_customer_key_reads_only_its_own_deliveries(
    client: FlaskClient, clients: Clients, seeded: list[str]
) -> None:
    a1, b, a2, c = seeded
    alice = as_role(client, clients, "customer", "alice")
    bob = as_role(client, clients, "customer", "bob")
    # The staff's list fills the cache first: a customer's same URL is another entry.
    assert listed(client) == [c, a2, b, a1]
    assert listed(alice) == [a2, a1]
    assert listed(bob) == [b]
    assert listed(alice) == [a2, a1]  # now from the cache, still only hers
    assert listed(alice, "customer_id=alice&status=pending") == [a1]
    assert listed(alice, "customer_id=bob") == []
    assert listed(alice, "drone_id=d9") == [a2]
    assert listed(client, "customer_id=bob") == [b]
    for path in ("", "/track"):
        assert body(alice.get(f"{URL}/{a1}{path}"))["id"] == a1
        # Someone else's delivery is exactly as missing as one that does not exist.
        theirs = assert_error(alice.get(f"{URL}/{b}{path}"), 404, "delivery_id")
        missing = assert_error(alice.get(f"{URL}/dlv-nope{path}"), 404, "delivery_id")
        assert theirs.replace(b, "dlv-nope") == missing
    assert body(client.get(f"{URL}/{b}"))["customer_id"] == "bob"  # cached for the staff ...
    assert_error(alice.get(f"{URL}/{b}"), 404, "delivery_id")  # ... and still not for her


def test_deliveries_page_on_with_before(clients: Clients, client: FlaskClient) -> None:
    made = [
        create(client, order_id=f"page-{i}", customer_id="alice" if i % 2 else "bob")
        for i in range(7)
    ]
    seen: list[str] = []
    before = ""
    while True:
        page = body(client.get(f"{URL}?limit=3{before}"))
        seen += [d["id"] for d in page["items"]]
        if page["count"] < 3:
            break
        before = f"&before={page['items'][-1]['id']}"
    assert sorted(seen) == sorted(d["id"] for d in made) and len(seen) == len(set(seen))
    # A filtered list pages within itself; a cursor from another list is refused.
    alice = [d["id"] for d in made if d["customer_id"] == "alice"]
    first = body(client.get(f"{URL}?customer_id=alice&limit=2"))["items"]
    rest = body(client.get(f"{URL}?customer_id=alice&before={first[-1]['id']}"))["items"]
    assert sorted(d["id"] for d in first + rest) == sorted(alice)
    bobs = next(d["id"] for d in made if d["customer_id"] == "bob")
    assert_error(client.get(f"{URL}?customer_id=alice&before={bobs}"), 400, "before")
    assert_error(client.get(f"{URL}?before=nope"), 400, "before")
