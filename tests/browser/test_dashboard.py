"""The dashboard in real headless Chromium over the real API, stores and processor."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from dashboard_stack import Stack
from playwright.sync_api import Page, expect

from skyhive.embedded import free_port

STATION = {"code": "12TH", "lat": 37.803664, "lon": -122.271604}
OPERATOR = "test operator"  # the name of the stack's operator key (auth_helpers.make_key)
# `page.wait_for_function` takes functions ("() => ..."), never bare expressions: Playwright
# evals a bare expression again on every poll, which the page's CSP (no 'unsafe-eval') refuses.


def drone(page: Page, drone_id: str) -> dict[str, Any] | None:
    """The drone as the page holds it, with where it was last drawn (container pixels)."""
    state: dict[str, Any] | None = page.evaluate(
        "id => { const d = window.skyhive.map.drones.drones.get(id);"
        " return d ? {...d, x: d._x, y: d._y} : null; }",
        drone_id,
    )
    return state


def expected_revenue(stack: Stack) -> str:
    page = stack.get("/api/v1/analytics/revenue?group_by=month")
    month = datetime.now(UTC).strftime("%Y-%m")
    revenue = next((float(r["revenue"]) for r in page["items"] if r["month"] == month), 0.0)
    return f"{revenue:.2f} {page['currency']}"


def test_page_loads_without_console_errors(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    page = open_page()
    expect(page).to_have_title("SkyHive operations")
    expect(page.locator("#conn")).to_have_text("live")
    # The 50 stations are on the map, and the panels answer to the keyboard.
    assert page.evaluate("window.skyhive.map.stations.getLayers().length") == 50
    page.locator("#tab-alerts").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#panel-fleet")).to_be_visible()
    expect(page.locator("#tab-fleet")).to_be_focused()
    # Revenue this month as the analytics API has it.
    page.locator("#tab-overview").click()
    expect(page.locator("#ov-revenue")).to_have_text(expected_revenue(stack))
    tablet = open_page(800, 1100)
    expect(tablet.locator("#map")).to_be_visible()
    expect(tablet.locator("#panel-alerts")).to_be_visible()
    tablet.locator("#tab-overview").click()
    expect(tablet.locator("#chart-fleet")).to_be_visible()
    expect(tablet.locator("#ov-revenue")).to_have_text(expected_revenue(stack))
    assert console_errors == []


@pytest.mark.parametrize("tiles_url", [f"http://127.0.0.1:{free_port()}/{{z}}/{{x}}/{{y}}.png"])
def test_unreachable_tiles_leave_a_plain_map(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    """Offline, one probe fails (Chromium logs that failed request) and no tile layer is
    added: no stream of failed image loads, and the map still shows the stations."""
    page = open_page()
    expect(page.locator("#map-note")).to_have_text("Map tiles unreachable: plain background.")
    assert page.evaluate("window.skyhive.map.stations.getLayers().length") == 50
    assert page.locator(".leaflet-tile").count() == 0
    assert len(console_errors) == 1 and "ERR_CONNECTION_REFUSED" in console_errors[0]


def test_drones_appear_and_move_as_telemetry_arrives(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    page = open_page()
    assert drone(page, "dash-1") is None
    stack.report("dash-1", STATION["lat"], STATION["lon"])
    page.wait_for_function("() => window.skyhive.map.drones.drones.has('dash-1')", timeout=5000)
    first = drone(page, "dash-1")
    assert first is not None and first["x"] is not None
    assert first["status"] == "in_flight" and first["battery_pct"] == 89.0

    stack.report("dash-1", STATION["lat"], STATION["lon"] + 0.01)
    page.wait_for_function(
        "() => window.skyhive.map.drones.drones.get('dash-1').seq === 2", timeout=5000
    )
    page.wait_for_timeout(100)  # the next animation frame draws it
    moved = drone(page, "dash-1")
    assert moved is not None
    assert moved["x"] > first["x"] + 5  # drawn further east
    assert abs(moved["y"] - first["y"]) < 1
    expect(page.locator("#kpi-drones")).to_have_text("1")

    # Click it: the drone panel shows its live state and takes a return-to-station order.
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + moved["x"], box["y"] + moved["y"])
    expect(page.locator("#drone-title")).to_have_text("Drone dash-1")
    expect(page.locator("#drone-facts")).to_contain_text("in_flight")
    # The charts hold its last hour from history, in 10-second averages, then the live
    # reading: the readings 1 s apart share a bucket or fall in two.
    page.wait_for_function(
        "() => window.skyhive.drone._charts.battery_pct.data.datasets[0].data.length >= 2"
    )
    battery = page.evaluate(
        "window.skyhive.drone._charts.battery_pct.data.datasets[0].data.map(p => p.y)"
    )
    assert battery in ([88.5, 88.0], [89.0, 88.0, 88.0]), battery
    page.locator("#drone-return").click()
    expect(page.locator("#drone-command-result")).to_contain_text("Ordered to")
    commands = stack.clients.redis_bytes.xrange(stack.clients.settings.commands_stream)
    assert len(commands) == 1
    assert console_errors == []


def test_an_emergency_shows_within_a_second_and_can_be_acknowledged(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    page = open_page()
    stack.report("dash-2", STATION["lat"], STATION["lon"])
    page.wait_for_function("() => window.skyhive.map.drones.drones.has('dash-2')", timeout=5000)

    started = time.monotonic()
    stack.report("dash-2", STATION["lat"], STATION["lon"], status="emergency", emergency=True)
    item = page.locator(".alert.critical", has_text="dash-2")
    expect(item).to_be_visible(timeout=1000)
    shown_s = time.monotonic() - started
    assert shown_s < 1.0
    expect(item).to_contain_text("emergency")
    expect(page.locator("#kpi-critical-box")).to_have_class("kpi-critical alarm")

    # Who acknowledges is the signed-in key's name (there is no name to type).
    assert page.locator("#operator").count() == 0
    item.get_by_role("button", name="Acknowledge").click()
    expect(item).to_contain_text(f"acknowledged by {OPERATOR}")
    [doc] = list(stack.clients.db.alerts.find({"drone_id": "dash-2"}))
    assert doc["state"] == "acknowledged" and doc["acknowledged_by"] == OPERATOR

    # Clicking the alert focuses its drone.
    item.click()
    expect(page.locator("#drone-title")).to_have_text("Drone dash-2")
    expect(page.locator("#drone-alerts")).to_contain_text("critical · emergency · acknowledged")
    assert console_errors == []


def test_a_critical_alert_resolved_unacknowledged_stays_until_acknowledged(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    page = open_page()
    stack.report("dash-4", STATION["lat"], STATION["lon"], status="emergency", emergency=True)
    item = page.locator(".alert.critical", has_text="dash-4")
    expect(item).to_be_visible(timeout=5000)
    stack.report("dash-4", STATION["lat"], STATION["lon"], status="idle", emergency=False)
    # Gone by itself, nobody looked: still listed, and only acknowledging clears it.
    expect(item).to_have_class(re.compile(r"\bresolved_unacknowledged\b"))
    expect(item).to_contain_text("resolved by itself")
    expect(item.get_by_role("button", name="Resolve")).to_have_count(0)
    [doc] = list(stack.clients.db.alerts.find({"drone_id": "dash-4"}))
    assert doc["state"] == "resolved_unacknowledged" and doc["resolved_by"] == "auto"
    page = open_page()  # listed from the API on load too, not only from the live stream
    item = page.locator(".alert.critical", has_text="dash-4")
    expect(item).to_be_visible()
    item.get_by_role("button", name="Acknowledge").click()
    expect(item).to_have_count(0)
    [doc] = list(stack.clients.db.alerts.find({"drone_id": "dash-4"}))
    assert doc["state"] == "resolved" and doc["acknowledged_by"] == OPERATOR
    assert doc["acknowledged_at"] is not None
    assert console_errors == []


def test_a_delivery_created_in_the_form_is_listed_and_on_the_map(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    # Deliveries need an existing customer: the form offers them in a select.
    status, customer = stack.post(
        "/api/v1/customers", {"name": "Ada Lovelace", "email": "ada@example.com"}
    )
    assert status == 201, customer
    customer_id = customer["id"]
    page = open_page()
    page.locator("#tab-deliveries").click()
    page.locator("#pickup").select_option("12TH")
    # The destination from a click on the map, 1-2 km north-east of the station.
    box = page.locator("#map").bounding_box()
    assert box is not None
    point = page.evaluate(
        "([lat, lon]) => window.skyhive.map.map.latLngToContainerPoint([lat, lon])",
        [STATION["lat"] + 0.01, STATION["lon"] + 0.01],
    )
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    lat = float(page.locator("#dest-lat").input_value())
    lon = float(page.locator("#dest-lon").input_value())
    assert abs(lat - STATION["lat"] - 0.01) < 0.003 and abs(lon - STATION["lon"] - 0.01) < 0.003
    page.locator("select#customer").select_option(customer_id)
    page.locator("#weight").fill("1.5")
    page.get_by_role("button", name="Create delivery").click()
    expect(page.locator("#delivery-form-result")).to_contain_text("Created")

    [doc] = list(stack.clients.db.deliveries.find({"customer_id": customer_id}))
    row = page.locator(f"tr[data-delivery-id='{doc['_id']}']")
    expect(row).to_contain_text("pending")
    expect(page.locator("#delivery-timeline")).to_contain_text("pending")
    routes = page.evaluate(
        "window.skyhive.map.routes.getLayers().map(l => l.getTooltip().getContent())"
    )
    assert f"{doc['_id']}: pending" in routes
    assert console_errors == []


def test_a_keyboard_user_finds_a_drone_in_the_fleet_list(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    for i in range(60):
        stack.report(f"kb-{i:02d}", STATION["lat"] + i * 1e-3, STATION["lon"])
    stack.report("kb-07", STATION["lat"], STATION["lon"], status="emergency", emergency=True)
    page = open_page()
    page.locator("#tab-alerts").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-fleet")).to_be_focused()
    rows = page.locator("#fleet-list button")
    # At most 50 rows, the emergency first; the rest is one filter away.
    expect(rows).to_have_count(50)
    expect(rows.first).to_have_text("kb-07 · emergency · 88 %")
    expect(page.locator("#fleet-summary")).to_have_text("50 of 60 drones shown; type to narrow.")
    page.keyboard.press("Tab")
    expect(page.locator("#fleet-filter")).to_be_focused()
    page.keyboard.type("kb-5")
    expect(rows).to_have_count(10)
    expect(page.locator("#fleet-summary")).to_have_text("10 of 60 drones.")
    page.keyboard.press("Tab")
    expect(rows.first).to_be_focused()
    expect(rows.first).to_have_text("kb-50 · in flight · 89 %")
    # A live update keeps the row (and the focus) in place.
    stack.report("kb-50", STATION["lat"] + 0.05, STATION["lon"])
    expect(rows.first).to_have_text("kb-50 · in flight · 88 %")
    expect(rows.first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#panel-drone")).to_be_visible()
    expect(page.locator("#drone-title")).to_have_text("Drone kb-50")
    expect(page.locator("#drone-title")).to_be_focused()
    assert page.evaluate("window.skyhive.map.drones.selected") == "kb-50"
    center = page.evaluate("window.skyhive.map.map.getCenter()")
    assert abs(center["lat"] - (STATION["lat"] + 0.05)) < 1e-6
    tablet = open_page(800, 1100)
    tablet.locator("#tab-fleet").click()
    expect(tablet.locator("#fleet-list button")).to_have_count(50)
    assert console_errors == []


def test_overview_shows_the_server_figures(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    status, customer = stack.post(
        "/api/v1/customers", {"name": "Grace Hopper", "email": "grace@example.com"}
    )
    assert status == 201, customer
    for i in range(3):
        status, _ = stack.post(
            "/api/v1/deliveries",
            {
                "order_id": f"ov-{i}",
                "customer_id": customer["id"],
                "pickup_station": STATION["code"],
                "destination": {"lat": STATION["lat"] + 0.01, "lon": STATION["lon"]},
                "package": {"weight_kg": 1.0, "size": "small"},
            },
        )
        assert status == 201
    stack.report("ov-1", STATION["lat"], STATION["lon"], status="emergency", emergency=True)
    page = open_page()
    page.locator("#tab-overview").click()
    expect(page.locator("#ov-deliveries")).to_have_text("3")
    expect(page.locator("#ov-alerts")).to_have_text("1 / 0")
    expect(page.locator("#ov-avg")).to_have_text("—")
    assert page.evaluate("window.skyhive.overview._deliveries.data.datasets[0].data") == [
        3, 0, 0, 0, 0, 0, 0, 0, 0
    ]  # fmt: skip
    assert console_errors == []


def _fetch_status(page: Page, path: str) -> int:
    """The status the page's own ``fetch`` gets (its cookies, if any, included)."""
    status: int = page.evaluate(
        "async p => (await fetch(p, {credentials: 'same-origin'})).status", path
    )
    return status


def test_signing_in_and_out(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    """Signed in through the login page: the key's name is shown, the session is an HttpOnly
    cookie scripts can't read; signing out returns to the login page and the API then
    refuses the page."""
    page = open_page()
    expect(page.locator("#whoami")).to_contain_text(OPERATOR)
    [cookie] = page.context.cookies()
    assert cookie["name"] == "skyhive_session"
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["value"] not in page.evaluate("document.cookie")
    assert stack.key not in page.content()  # the key itself is not kept by the page
    assert _fetch_status(page, "/api/v1/drones") == 200

    page.locator("#sign-out").click()
    page.wait_for_url(stack.url + "/login")
    expect(page.locator("#login-form")).to_be_visible()
    assert page.context.cookies() == []
    assert console_errors == []
    assert _fetch_status(page, "/api/v1/drones") == 401
    # ... which Chromium logs as a failed load: the only console error.
    assert len(console_errors) == 1 and "401" in console_errors[0], console_errors
    page.goto(stack.url + "/")  # the dashboard itself sends it back to sign in
    page.wait_for_url(stack.url + "/login")


def test_a_wrong_key_is_refused_on_the_login_page(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    page = open_page()
    page.locator("#sign-out").click()
    page.wait_for_url(stack.url + "/login")
    page.locator("#key").fill("shk_not-a-key")
    page.locator("#login-form button[type=submit]").click()
    expect(page.locator("#login-error")).to_contain_text("unknown, expired or revoked")
    assert page.url == stack.url + "/login"
    # The browser logs the refused sign-in request (401) as a failed resource load.
    assert all("401" in e for e in console_errors), console_errors


def test_the_header_says_when_ingest_is_behind(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    page = open_page()
    badge = page.locator("#ingest-lag")
    expect(badge).to_be_hidden()  # the processor keeps up (nothing waiting)
    # Readings the processor has not read for 20 s (entry ids carry their arrival time).
    r = stack.clients.redis_bytes
    stream = stack.clients.settings.telemetry_stream
    old_ms = int(time.time() * 1000) - 20_000
    for i in range(3):
        r.xadd(stream, {b"k": b"late", b"v": b"{}"}, id=f"{old_ms + i}-0")
    expect(badge).to_contain_text("Ingest behind", timeout=12_000)  # polled every 5 s
    assert console_errors == []
