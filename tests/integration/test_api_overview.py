"""``GET /api/v1/overview`` against the embedded servers: every figure equals the same
figure computed in Python over the seeded records."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from api_asserts import assert_error, body
from billing_data import finish, order, world
from customer_seed import add_customers
from flask.testing import FlaskClient

from auth_helpers import api_client
from manual_clock import ManualClock
from skyhive.adapters.money import decode_money
from skyhive.adapters.mongo import restore_datetimes
from skyhive.api import create_app
from skyhive.api.overview import Overview
from skyhive.domain.billing import Period
from skyhive.domain.telemetry import validate_telemetry
from skyhive.services.overview import drones_by_status
from skyhive.wiring import Clients

CUSTOMERS = ("alice", "bob")


def put_drones(clients: Clients, states: list[dict[str, Any]]) -> None:
    """Live states as the processor writes them."""
    readings = []
    for i, extra in enumerate(states):
        reading = {
            "drone_id": f"ov-{i}",
            "seq": 1,
            "ts": 1_700_000_000_000,
            "battery_pct": 50.0,
            **extra,
        }
        readings.append(validate_telemetry(reading))
    clients.live.apply(readings, "2026-01-01T00:00:00Z")


def seed(clients: Clients, now: datetime) -> None:
    """Deliveries created yesterday and today in every end state, open, acknowledged and
    resolved alerts, and this month's deliveries billed (as if the month had ended)."""
    svc = world(clients, *CUSTOMERS)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = now - day
    yesterday = day - timedelta(hours=2)
    plan = [
        (yesterday, "delivered", 900),
        (yesterday, "pending", 0),
        (day, "delivered", 300),  # the first instant of today counts
        (day + elapsed / 4, "delivered", 1200),
        (day + elapsed / 3, "delivered", 450),
        (day + elapsed / 3, "failed", 60),
        (day + elapsed / 2, "cancelled", 0),
        (day + elapsed / 2, "pending", 0),
        (day + elapsed / 2, "pending", 0),
    ]
    for i, (created, end, took_s) in enumerate(plan):
        doc = order(svc, CUSTOMERS[i % 2], "12TH", created, km=0.01 * (i + 1))
        if end != "pending":
            finish(clients, doc, end, min(created + timedelta(seconds=took_s), now))
    month = Period.of(now)
    clients.billing.run(month, month.end + timedelta(hours=1))
    clients.db.alerts.insert_many(
        [
            {"_id": f"a{i}", "drone_id": "ov-0", "type": "low_battery", "severity": sev,
             "state": state, "opened_at": now}
            for i, (sev, state) in enumerate(
                [("critical", "open"), ("critical", "open"), ("warning", "open"),
                 ("warning", "acknowledged"), ("critical", "resolved"),
                 ("critical", "resolved_unacknowledged")]
            )
        ]
    )  # fmt: skip
    put_drones(
        clients,
        [
            {"status": "idle"},
            {"status": "in_flight"},
            {"status": "in_flight"},
            {"status": "in_flight", "emergency": True},
            {"status": "charging"},
            {},
        ],
    )


def expected(clients: Clients, now: datetime) -> dict[str, Any]:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    docs = [
        restore_datetimes(d, ("created_at", "delivered_at")) for d in clients.db.deliveries.find()
    ]
    today = [d for d in docs if day <= d["created_at"] < day + timedelta(days=1)]
    took = [
        (d["delivered_at"] - d["created_at"]).total_seconds()
        for d in today
        if d["status"] == "delivered"
    ]
    month = now.strftime("%Y-%m")
    prices = [decode_money(d["price_final"]) for d in docs if d.get("delivered_month") == month]
    revenue = sum((p for p in prices if p is not None), Decimal("0.00"))
    alerts = Counter(a["severity"] for a in clients.db.alerts.find({"state": "open"}))
    return {
        "deliveries": Counter(d["status"] for d in today),
        "avg_s": sum(took) / len(took),
        "revenue": revenue,
        "alerts": alerts,
        "drones": Counter(
            "emergency" if s["emergency"] else (s["status"] or "unknown")
            for s in clients.live.all()
        ),
    }


def ok(resp: Any) -> Any:
    assert resp.status_code == 200, resp.data[:300]
    return body(resp)


@pytest.fixture
def client(clients: Clients) -> FlaskClient:
    return api_client(clients, "viewer")


@pytest.fixture
def now(clients: Clients) -> datetime:
    """The test's "now", and the overview's (its clock): today and this month are the same
    UTC day and month for the seed and for the server, even when a run passes midnight or a
    month's end between seeding and asking (the figures would then be of the next, empty day)."""
    frozen = datetime.now(UTC)
    clients.__dict__["clock"] = ManualClock(frozen)  # before anything is built with it
    return frozen


def as_of(got: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(got["as_of"])


def test_overview_equals_python_figures(
    client: FlaskClient, clients: Clients, now: datetime
) -> None:
    seed(clients, now)
    want = expected(clients, now)
    got = ok(client.get("/api/v1/overview"))
    Overview.model_validate(got)  # what the document declares
    assert as_of(got) == now  # the overview read the test's clock

    deliveries = got["deliveries_today"]
    assert deliveries["day"] == now.date().isoformat()
    assert deliveries["by_status"] == {
        s: want["deliveries"].get(s, 0)
        for s in ("pending", "assigned", "picked_up", "in_transit", "non_conforming",
                  "contingent", "delivered", "failed", "cancelled")
    }  # fmt: skip
    assert deliveries["total"] == sum(want["deliveries"].values()) == 7
    assert deliveries["avg_delivery_s"] == pytest.approx(want["avg_s"], abs=1e-3)

    assert got["open_alerts"] == {
        "total": 3,
        "by_severity": {
            "critical": want["alerts"]["critical"],
            "warning": want["alerts"]["warning"],
        },
        "unacknowledged": 1,
    }
    assert got["drones"]["total"] == 6
    assert {k: v for k, v in got["drones"]["by_status"].items() if v} == dict(want["drones"])
    assert got["drones"]["by_status"]["returning"] == 0

    revenue = got["revenue_this_month"]
    assert revenue["month"] == now.strftime("%Y-%m")
    assert Decimal(revenue["revenue"]) == want["revenue"] > 0
    assert revenue["currency"] == clients.settings.pricing.currency
    assert (revenue["unbilled"], revenue["unbilled_deliveries"]) == ("0.00", 0)  # all billed


def test_the_running_month_shows_what_its_deliveries_will_add(
    client: FlaskClient, clients: Clients, now: datetime
) -> None:
    svc = world(clients, *CUSTOMERS)
    done = []
    for i, end in enumerate(("delivered", "delivered", "failed", "cancelled")):
        doc = order(svc, CUSTOMERS[i % 2], "12TH", now - timedelta(minutes=5), km=0.01 * (i + 1))
        finish(clients, doc, end, now)
        done.append(doc)
    want = sum(
        (decode_money(clients.db.deliveries.find_one({"_id": d.id})["price_final"])
         for d in done[:2]),
        Decimal("0.00"),
    )  # fmt: skip
    got = ok(client.get("/api/v1/overview"))
    assert as_of(got) == now
    revenue = got["revenue_this_month"]
    assert revenue["month"] == now.strftime("%Y-%m")
    assert revenue["revenue"] == "0.00"  # not invoiced before the month ends
    assert Decimal(revenue["unbilled"]) == want > 0
    assert revenue["unbilled_deliveries"] == 2


def test_empty_platform_reads_zeros(client: FlaskClient) -> None:
    got = ok(client.get("/api/v1/overview"))
    assert got["deliveries_today"]["total"] == 0
    assert set(got["deliveries_today"]["by_status"].values()) == {0}
    assert got["deliveries_today"]["avg_delivery_s"] is None
    assert got["open_alerts"] == {
        "total": 0,
        "by_severity": {"critical": 0, "warning": 0},
        "unacknowledged": 0,
    }
    assert got["drones"]["total"] == 0
    assert got["revenue_this_month"]["revenue"] == "0.00"
    assert got["revenue_this_month"]["unbilled"] == "0.00"


def test_drones_by_status_counts_every_status() -> None:
    counts = drones_by_status(
        [{"status": "idle"}, {"status": "returning", "emergency": True}, {"status": None}]
    )
    assert counts == {
        "idle": 1,
        "in_flight": 0,
        "charging": 0,
        "returning": 0,
        "emergency": 1,
        "unknown": 1,
    }


def test_overview_needs_a_staff_key(clients: Clients) -> None:
    resp = create_app(clients.settings, clients).test_client().get("/api/v1/overview")
    assert_error(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    add_customers(clients, "alice")
    assert_error(api_client(clients, "customer", "alice").get("/api/v1/overview"), 403)
