"""Revenue analytics: the aggregation pipelines' results equal sums computed in Python over
the same invoices."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from api_asserts import assert_error, body
from billing_data import delivered, world
from flask.testing import FlaskClient

from auth_helpers import api_client
from skyhive.adapters.money import decode_money
from skyhive.domain.billing import Period
from skyhive.wiring import Clients

CUSTOMERS = ("alice", "bob", "carol", "dave")
STATIONS = ("12TH", "EMBR", "MONT", "DBRK")
MONTHS = (Period(2026, 8), Period(2026, 9), Period(2026, 10))


@pytest.fixture
def client(clients: Clients) -> FlaskClient:
    svc = world(clients, *CUSTOMERS)
    rng = random.Random(5)
    for period in MONTHS:
        for _ in range(8):
            at = period.start + timedelta(days=rng.randrange(28), hours=rng.randrange(24))
            kg = rng.choice((0.4, 1.0, 1.7, 2.3))
            size = rng.choice(("small", "medium", "large"))
            km = rng.choice((0.005, 0.01, 0.03))
            delivered(
                clients,
                svc,
                rng.choice(CUSTOMERS[:3]),
                rng.choice(STATIONS),
                at,
                kg=kg,
                size=size,
                km=km,
            )
        clients.billing.run(period, period.end + timedelta(hours=1))
    # One invoice paid, so paid and outstanding differ.
    clients.billing.pay("inv-2026-09-alice", {})
    return api_client(clients)


def python_sums(clients: Clients) -> dict[str, dict[str, Decimal]]:
    out: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for inv in clients.db.invoices.find():
        for item in inv["items"]:
            total = decode_money(item["total"])
            assert total is not None
            out["month"][item["month"]] += total
            out["station"][item["station"]] += total
            out["customer"][inv["customer_id"]] += total
    return out


def test_revenue_by_month_and_station_equals_python_sums(
    client: FlaskClient, clients: Clients
) -> None:
    sums = python_sums(clients)
    for group in ("month", "station"):
        got = body(client.get(f"/api/v1/analytics/revenue?group_by={group}"))
        assert got["group_by"] == group and got["currency"] == "USD"
        assert {i[group]: Decimal(i["revenue"]) for i in got["items"]} == sums[group]
        assert [i[group] for i in got["items"]] == sorted(sums[group])
        assert got["count"] == len(sums[group])
        assert sum(i["items"] for i in got["items"]) == 24
    by_month = body(client.get("/api/v1/analytics/revenue?group_by=month"))["items"]
    per_month = defaultdict(set)
    for inv in clients.db.invoices.find():
        per_month[inv["period"]].add(inv["_id"])
    assert {i["month"]: i["invoices"] for i in by_month} == {
        m: len(v) for m, v in per_month.items()
    }


def test_customer_revenue_equals_python_sums(client: FlaskClient, clients: Clients) -> None:
    sums = python_sums(clients)
    for customer in CUSTOMERS:
        invoices = list(clients.db.invoices.find({"customer_id": customer}))
        billed = sum((decode_money(i["total_amount"]) for i in invoices), Decimal("0"))  # type: ignore[misc]
        paid = sum(
            (decode_money(i["total_amount"]) for i in invoices if i["status"] == "paid"),  # type: ignore[misc]
            Decimal("0"),
        )
        got = body(client.get(f"/api/v1/customers/{customer}/revenue"))
        assert Decimal(got["revenue"]) == sums["customer"].get(customer, Decimal("0"))
        assert Decimal(got["billed"]) == billed
        assert Decimal(got["revenue"]) + Decimal(got["tax"]) == billed
        assert Decimal(got["paid"]) == paid and Decimal(got["outstanding"]) == billed - paid
        assert got["invoices"] == len(invoices)
    assert Decimal(body(client.get("/api/v1/customers/alice/revenue"))["paid"]) > 0


def test_top_customers(client: FlaskClient, clients: Clients) -> None:
    sums = python_sums(clients)["customer"]
    expected = sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))
    got = body(client.get("/api/v1/analytics/top-customers?limit=2"))
    assert [(i["customer_id"], Decimal(i["revenue"])) for i in got["items"]] == expected[:2]
    assert got["items"][0]["name"] == f"Customer {expected[0][0]}"
    assert body(client.get("/api/v1/analytics/top-customers"))["count"] == len(sums) == 3


def test_bad_parameters_are_400(client: FlaskClient) -> None:
    assert_error(client.get("/api/v1/analytics/revenue"), 400, "group_by")
    assert_error(client.get("/api/v1/analytics/revenue?group_by=year"), 400, "group_by")
    assert_error(client.get("/api/v1/analytics/top-customers?limit=0"), 400, "limit")


def test_no_invoices_no_revenue(clients: Clients) -> None:
    world(clients)
    client = api_client(clients)
    got = body(client.get("/api/v1/analytics/revenue?group_by=station"))
    assert got == {"group_by": "station", "currency": "USD", "items": [], "count": 0}


def test_analytics_are_for_admins_and_revenue_for_its_own_customer(
    client: FlaskClient, clients: Clients
) -> None:
    app = client.application
    anonymous = app.test_client()
    staff = [api_client(clients, role, app=app) for role in ("viewer", "operator")]
    alice = api_client(clients, "customer", "alice", app=app)
    for url in ("/api/v1/analytics/revenue?group_by=month", "/api/v1/analytics/top-customers"):
        resp = anonymous.get(url)
        assert_error(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        for who in (*staff, alice):
            assert_error(who.get(url), 403)
        assert client.get(url).status_code == 200
    mine = body(alice.get("/api/v1/customers/alice/revenue"))
    assert mine == body(client.get("/api/v1/customers/alice/revenue"))
    assert Decimal(mine["paid"]) > 0
    assert_error(alice.get("/api/v1/customers/bob/revenue"), 404, "customer_id")
