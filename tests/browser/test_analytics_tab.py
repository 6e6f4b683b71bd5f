"""The dashboard's Analytics tab (``static/js/analytics.js``) in headless Chromium, over the
real API and stores: a few hours of simulated history (deliveries, readings rolled up,
alerts) drawn in every chart as the analytics API answers it, the window picker, and the
demand forecast panel in the same tab."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from dashboard_stack import Stack
from playwright.sync_api import Page, expect

from skyhive.domain.alert_lifecycle import AlertUpdate


def seed(stack: Stack) -> None:
    """Six hours of history up to the current hour, its rollups, and one critical alert."""
    clients = stack.clients
    seeder = clients.history_seeder
    summary = seeder.run(timedelta(hours=6), seeder.drones(2), 5, 10.0, 60.0, orders_per_day=300)
    assert summary.statuses["delivered"] > 5, summary.lines()
    clients.rollups.rebuild(summary.since - timedelta(minutes=5), summary.until)
    opened = summary.until - timedelta(hours=1)
    clients.alerts.apply(
        [AlertUpdate("a-analytics", "drone-0001", "low_battery", "critical", opened, opened)]
    )


def answers(stack: Stack) -> dict[str, Any]:
    """The API's answers over the last 24 hours (the history sits well inside)."""
    now = datetime.now(UTC)
    window = urlencode({"since": (now - timedelta(hours=24)).isoformat(), "until": now.isoformat()})
    names = ("stations", "delivery-times", "utilisation", "energy", "alerts", "outcomes")
    return {n: stack.get(f"/api/v1/analytics/{n}?{window}") for n in names}


def drawn(page: Page, name: str) -> dict[str, Any]:
    data: dict[str, Any] = page.evaluate(
        "name => { const c = window.skyhive.analytics.charts[name];"
        " return {labels: c.data.labels, data: c.data.datasets.map(d => d.data)}; }",
        name,
    )
    return data


def test_the_tab_draws_every_chart_from_the_analytics_api(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    seed(stack)
    want = answers(stack)
    page = open_page()
    page.locator("#tab-analytics").click()
    expect(page.locator("#panel-analytics")).to_be_visible()
    status = page.locator("#analytics-panel [role=status]")
    expect(status).to_contain_text(f"{want['outcomes']['orders']} orders")
    page.locator("#analytics-window").select_option("24h")
    expect(status).to_contain_text("in the last 24 hours")

    stations = drawn(page, "stations")
    busiest = sorted(want["stations"]["stations"], key=lambda s: -s["orders"])[:12]
    assert sorted(stations["labels"]) == sorted(s["station"] for s in busiest)
    assert sum(stations["data"][0]) == sum(s["orders"] for s in busiest) > 0

    t = want["delivery-times"]["overall"]
    times = drawn(page, "times")
    assert times["labels"] == ["p50", "p90", "p95", "p99"]
    assert times["data"][0] == pytest.approx([t[f"p{p}_s"] / 60 for p in (50, 90, 95, 99)])

    flying, idle, charging = drawn(page, "utilisation")["data"]
    fleet = want["utilisation"]["fleet"]
    assert sum(flying) * 3600 == pytest.approx(sum(d["flight_s"] for d in fleet))
    assert sum(flying) > 0
    assert len(flying) == len(idle) == len(charging) == len(fleet)

    energy = drawn(page, "energy")
    assert energy["labels"] == [m["model"] for m in want["energy"]["items"]] != []
    alerts = drawn(page, "alerts")
    assert dict(zip(alerts["labels"], alerts["data"][1], strict=True))["low_battery"] >= 1
    assert drawn(page, "onTime")["labels"], "the simulated dispatcher gives ETAs"

    # The demand forecast lives in this tab too (no forecast trained here: it says so).
    expect(page.locator("#panel-analytics #forecast-panel h3")).to_have_text("Demand forecast")
    page.locator("#analytics-window").select_option("30d")
    expect(status).to_contain_text("in the last 30 days")
    assert page.evaluate("window.skyhive.analytics.window") == "30d"
    page.locator("#analytics-panel figure").nth(0).scroll_into_view_if_needed()  # screenshot
    assert console_errors == []
