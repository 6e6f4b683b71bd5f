"""The customers API against the real embedded MongoDB and Redis, through Flask's test
client: validation, unique addresses (any case), edits, deletes refused while invoices are
unpaid, and orders refused for unknown customers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from api_asserts import assert_error, body
from billing_data import delivered, world
from flask.testing import FlaskClient

from auth_helpers import api_client
from skyhive.domain.billing import Period
from skyhive.wiring import Clients

URL = "/api/v1/customers"
ADA = {
    "name": "Ada's Bakery",
    "email": "Orders@AdasBakery.example",
    "phone": "+1 510 555 0101",
    "address": {"street": "1423 Broadway", "city": "Oakland", "state": "CA", "zip": "94612"},
}


@pytest.fixture
def client(clients: Clients) -> FlaskClient:
    world(clients)
    return api_client(clients)


def create(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    resp = client.post(URL, json={**ADA, **overrides})
    assert resp.status_code == 201, resp.data
    got: dict[str, Any] = body(resp)
    assert resp.headers["Location"] == f"{URL}/{got['id']}"
    return got


def test_create_read_list(client: FlaskClient) -> None:
    ada = create(client)
    assert ada["id"].startswith("cus-") and ada["email"] == ADA["email"]
    assert ada["address"] == ADA["address"] and ada["created_at"].endswith("Z")
    assert body(client.get(f"{URL}/{ada['id']}")) == ada
    bob = create(client, name="Bob", email="bob@example.com", phone=None, address=None)
    assert body(client.get(URL))["items"] == sorted([ada, bob], key=lambda c: c["id"])
    found = body(client.get(f"{URL}?email=ORDERS@adasbakery.EXAMPLE"))
    assert found["items"] == [ada] and found["count"] == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**ADA, "email": "not-an-address"}, "email"),
        ({**ADA, "email": "a@b"}, "email"),
        ({**ADA, "name": ""}, "name"),
        ({**ADA, "phone": "call me"}, "phone"),
        ({**ADA, "address": {**ADA["address"], "zip": "9461"}}, "address.zip"),
        ({**ADA, "extra": 1}, "extra"),
        ({k: v for k, v in ADA.items() if k != "email"}, "email"),
    ],
)
def test_invalid_customers_are_422_naming_the_field(
    client: FlaskClient, payload: dict[str, Any], field: str
) -> None:
    assert_error(client.post(URL, json=payload), 422, field)


def test_an_address_belongs_to_one_customer_in_any_case(client: FlaskClient) -> None:
    ada = create(client)
    msg = assert_error(
        client.post(URL, json={**ADA, "email": "orders@adasbakery.example"}), 409, "email"
    )
    assert "already exists" in msg
    bob = create(client, email="bob@example.com")
    resp = client.patch(f"{URL}/{bob['id']}", json={"email": "ORDERS@adasbakery.example"})
    assert_error(resp, 409, "email")
    assert body(client.get(f"{URL}/{bob['id']}"))["email"] == "bob@example.com"
    assert body(client.get(f"{URL}/{ada['id']}"))["email"] == ADA["email"]


def test_patch_changes_only_what_is_sent(client: FlaskClient) -> None:
    ada = create(client)
    resp = client.patch(f"{URL}/{ada['id']}", json={"phone": "+1 510 555 0199", "name": None})
    assert resp.status_code == 200, resp.data
    got = body(resp)
    assert got["phone"] == "+1 510 555 0199" and got["name"] == ADA["name"]
    assert got["updated_at"] >= ada["updated_at"]
    assert body(client.get(f"{URL}/{ada['id']}")) == got
    assert_error(client.patch(f"{URL}/{ada['id']}", json={}), 400)
    assert_error(client.patch(f"{URL}/{ada['id']}", json={"email": "nope"}), 422, "email")
    assert_error(client.patch(f"{URL}/cus-missing", json={"name": "X"}), 404, "customer_id")


def test_delete(client: FlaskClient) -> None:
    ada = create(client)
    assert client.delete(f"{URL}/{ada['id']}").status_code == 204
    assert_error(client.get(f"{URL}/{ada['id']}"), 404, "customer_id")
    assert_error(client.delete(f"{URL}/{ada['id']}"), 404, "customer_id")
    create(client)  # the address is free again


def test_a_customer_with_unpaid_invoices_cannot_be_deleted(
    client: FlaskClient, clients: Clients
) -> None:
    ada = create(client)
    svc = world(clients)
    delivered(clients, svc, ada["id"], "12TH", datetime(2026, 10, 5, tzinfo=UTC))
    clients.billing.run(Period(2026, 10), datetime(2026, 11, 2, tzinfo=UTC))
    msg = assert_error(client.delete(f"{URL}/{ada['id']}"), 409)
    assert "1 unpaid invoice" in msg
    [invoice] = body(client.get(f"/api/v1/invoices?customer_id={ada['id']}"))["items"]
    assert client.post(f"/api/v1/invoices/{invoice['id']}/pay").status_code == 200
    assert client.delete(f"{URL}/{ada['id']}").status_code == 204


def test_orders_for_unknown_customers_are_refused(client: FlaskClient) -> None:
    order = {
        "customer_id": "nobody",
        "pickup_station": "12TH",
        "destination": {"lat": 37.812, "lon": -122.262},
        "package": {"weight_kg": 1.2, "size": "small"},
    }
    msg = assert_error(client.post("/api/v1/deliveries", json=order), 422, "customer_id")
    assert "unknown customer 'nobody'" in msg
    ada = create(client)
    resp = client.post("/api/v1/deliveries", json={**order, "customer_id": ada["id"]})
    assert resp.status_code == 201, resp.data
    got = body(resp)
    # 3.50 + 1.20 * 1.302 km + 0.40 * 1.2 kg = 5.5424
    assert (got["distance_km"], got["price_estimate"]) == (1.302, "5.54")


def test_revenue_of_an_unknown_customer_is_404(client: FlaskClient) -> None:
    assert_error(client.get(f"{URL}/cus-missing/revenue"), 404, "customer_id")
    ada = create(client)
    got = body(client.get(f"{URL}/{ada['id']}/revenue"))
    assert got == {
        "customer_id": ada["id"],
        "currency": "USD",
        "revenue": "0.00",
        "tax": "0.00",
        "billed": "0.00",
        "paid": "0.00",
        "outstanding": "0.00",
        "invoices": 0,
    }


# --- access -----------------------------------------------------------------------------------


def test_every_operation_needs_a_key(client: FlaskClient) -> None:
    ada = create(client)
    anonymous = client.application.test_client()
    url = f"{URL}/{ada['id']}"
    for resp in (
        anonymous.post(URL, json={**ADA, "email": "x@example.com"}),
        anonymous.get(URL),
        anonymous.get(url),
        anonymous.patch(url, json={"name": "X"}),
        anonymous.delete(url),
        anonymous.get(f"{url}/revenue"),
    ):
        assert_error(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert body(client.get(url)) == ada


def test_operators_read_customers_and_only_admins_change_them(
    client: FlaskClient, clients: Clients
) -> None:
    ada = create(client)
    url = f"{URL}/{ada['id']}"
    viewer, operator, alice = (
        api_client(clients, role, customer, app=client.application)
        for role, customer in (("viewer", None), ("operator", None), ("customer", ada["id"]))
    )
    # Viewers and customer keys see no customer records (personal data).
    for who in (viewer, alice):
        assert_error(who.get(URL), 403)
        assert_error(who.get(url), 403)
    assert body(operator.get(URL))["items"] == [ada]
    assert body(operator.get(url)) == ada
    for who in (viewer, operator, alice):
        assert_error(who.post(URL, json={**ADA, "email": "x@example.com"}), 403)
        assert_error(who.patch(url, json={"name": "X"}), 403)
        assert_error(who.delete(url), 403)
    assert body(client.get(URL))["items"] == [ada]
    # The revenue: admins any customer's; operators and viewers none.
    assert body(client.get(f"{url}/revenue"))["customer_id"] == ada["id"]
    for who in (viewer, operator):
        assert_error(who.get(f"{url}/revenue"), 403)


def test_a_customer_key_reads_only_its_own_revenue(client: FlaskClient, clients: Clients) -> None:
    ada, bob = create(client), create(client, name="Bob", email="bob@example.com")
    own = api_client(clients, "customer", ada["id"], app=client.application)
    got = body(own.get(f"{URL}/{ada['id']}/revenue"))
    assert got["customer_id"] == ada["id"] and got["invoices"] == 0
    # Another customer's is exactly as missing as one that does not exist.
    theirs = assert_error(own.get(f"{URL}/{bob['id']}/revenue"), 404, "customer_id")
    missing = assert_error(own.get(f"{URL}/cus-missing/revenue"), 404, "customer_id")
    assert theirs.replace(bob["id"], "cus-missing") == missing
