"""The declared corridors of active deliveries on the dashboard's map, in real headless
Chromium: a conforming flight in one colour, one off its corridor in another."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dashboard_stack import Stack
from playwright.sync_api import Page

from skyhive.domain.conformance import ConformanceConfig, declare
from skyhive.domain.deliveries import Delivery, Package, Point

T0 = datetime(2026, 11, 23, 10, tzinfo=UTC)
PICKUP = Point(lat=37.803664, lon=-122.271604)  # 12TH
BACK = (37.797484, -122.265609)  # LAKE


def flying(n: int, status: str) -> Delivery:
    dest = (PICKUP.lat + 0.01 * n, PICKUP.lon + 0.01)
    decl = declare(
        f"dlv-corridor-{n}",
        f"cd{n}",
        [(PICKUP.lat, PICKUP.lon), dest, BACK],
        T0,
        T0 + timedelta(minutes=20),
        T0,
        ConformanceConfig(),
    )
    return Delivery(
        id=decl.delivery_id,
        customer_id="c1",
        pickup_station="12TH",
        pickup_location=PICKUP,
        destination=Point(lat=dest[0], lon=dest[1]),
        package=Package(weight_kg=1.0, size="small"),
        status=status,  # type: ignore[arg-type]
        drone_id=decl.drone_id,
        return_station="LAKE",
        declaration=decl,
        created_at=T0,
        updated_at=T0,
    )


def test_active_corridors_are_drawn_off_ones_in_another_colour(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    stack.clients.deliveries.insert_missing([flying(1, "in_transit"), flying(2, "non_conforming")])
    page = open_page()
    page.locator("#tab-deliveries").click()
    page.wait_for_function("() => window.skyhive.map.corridors.getLayers().length === 2")
    drawn = page.evaluate(
        "window.skyhive.map.corridors.getLayers()"
        ".map(l => [l.getTooltip().getContent(), l.options.color, l.getLatLngs().length])"
    )
    assert sorted(drawn) == [
        ["corridor of dlv-corridor-1: in_transit", "#1b7d3a", 3],
        ["corridor of dlv-corridor-2: non_conforming", "#c77700", 3],
    ]
    first = page.evaluate("window.skyhive.map.corridors.getLayers()[0].getLatLngs()[0]")
    assert (first["lat"], first["lng"]) == (PICKUP.lat, PICKUP.lon)  # [lon, lat] turned round
    assert console_errors == []
