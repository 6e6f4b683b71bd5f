"""The dashboard served by the real ``skyhive up`` (gunicorn, the processor and gateway as
processes, MQTT): signed in with the admin key the first start made, it loads without console
errors and draws drones published over MQTT."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from dashboard_stack import open_dashboard, screenshot
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, expect

from e2e.harness import Up

pytestmark = pytest.mark.e2e

DRONES = [f"up-{i}" for i in range(5)]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    u = Up(tmp_path / "data", env={"SKYHIVE_DASHBOARD__TILES_URL": ""})  # offline: no tiles
    u.start()
    yield u
    u.stop()


def register(up: Up) -> dict[str, str]:
    """Register the drones as an operator does; each one's MQTT password (printed once)."""
    cmd = ("drones", "register", "--home-station", "12TH")
    return {d: up.run(*cmd, d).splitlines()[-1] for d in DRONES}


def publish(port: int, passwords: dict[str, str], lat: float) -> None:
    """One reading from each drone, each signed in to the broker as itself."""
    now_ms = int(time.time() * 1000)
    for i, drone_id in enumerate(DRONES):
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dashboard-e2e-{drone_id}")
        c.username_pw_set(drone_id, passwords[drone_id])
        c.connect("127.0.0.1", port)
        c.loop_start()
        reading = {
            "seq": int(lat * 1e4),
            "ts": now_ms,
            "lat": lat + i * 0.002,
            "lon": -122.27,
            "alt_m": 80.0,
            "battery_pct": 70.0,
            "status": "in_flight",
        }
        info = c.publish(f"skyhive/drones/{drone_id}/telemetry", orjson.dumps(reading), qos=1)
        info.wait_for_publish(10)
        c.disconnect()
        c.loop_stop()


def test_dashboard_under_skyhive_up_shows_mqtt_drones(up: Up, browser: Browser) -> None:
    console_errors: list[str] = []
    assert up.key is not None
    page = open_dashboard(browser, up.url(""), up.key, console_errors)  # the first admin key
    expect(page.locator("#whoami")).to_contain_text("admin")
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#map-note")).to_have_text("Map tiles off: plain background.")
    assert page.evaluate("window.skyhive.map.stations.getLayers().length") == 50

    passwords = register(up)
    publish(up.mqtt_port, passwords, 37.80)
    page.wait_for_function(
        "ids => ids.every(id => window.skyhive.map.drones.drones.has(id))", arg=DRONES
    )
    expect(page.locator("#kpi-drones")).to_have_text(str(len(DRONES)))
    # Drawn: each has a position on the map's canvas, inside the map.
    size = page.evaluate("window.skyhive.map.map.getSize()")
    for drone_id in DRONES:
        d = page.evaluate("id => { const d = window.skyhive.map.drones.drones.get(id);"
                          " return {x: d._x, y: d._y, battery: d.battery_pct}; }", drone_id)  # fmt: skip
        assert d["battery"] == 70.0
        assert 0 <= d["x"] <= size["x"] and 0 <= d["y"] <= size["y"], d

    # A second report moves them: the stream carries it through the real processes.
    publish(up.mqtt_port, passwords, 37.81)
    page.wait_for_function(
        "() => window.skyhive.map.drones.drones.get('up-0').lat === 37.81", timeout=10_000
    )
    page.locator("#tab-overview").click()
    expect(page.locator("#ov-deliveries")).to_have_text("0")
    overview = up.get("/api/v1/overview")
    assert overview["drones"]["by_status"]["in_flight"] == len(DRONES)
    screenshot(page, "test_dashboard_under_skyhive_up_shows_mqtt_drones-1280x800")
    page.context.close()
    assert console_errors == []
