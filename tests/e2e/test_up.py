"""`skyhive up` as a user runs it: real processes, real MQTT, the HTTP API, restart, shutdown."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from e2e.harness import Up, processes_using, wait_for

pytestmark = pytest.mark.e2e
BASE_MS = 1795428000000
DRONE = "e2e-1"


def publish(port: int, items: list[tuple[str, bytes]]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="e2e-publisher")
    c.connect("127.0.0.1", port)
    c.loop_start()
    for info in [c.publish(t, p, qos=1) for t, p in items]:
        info.wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def reading(seq: int, battery: float, **extra: object) -> bytes:
    return orjson.dumps(
        {
            "seq": seq,
            "ts": BASE_MS + seq * 1000,
            "battery_pct": battery,
            "lat": 37.80 + seq * 1e-4,
            "lon": -122.27,
            "alt_m": 80.0,
            "status": "in_flight",
            **extra,
        }
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e") / "data"


@pytest.fixture(scope="module")
def up(data_dir: Path) -> Iterator[Up]:
    u = Up(data_dir)
    u.start()
    yield u
    if u.proc and u.proc.poll() is None:
        u.stop()


def test_telemetry_flows_end_to_end(up: Up) -> None:
    topic = f"skyhive/drones/{DRONE}/telemetry"
    items = [(topic, reading(s, 90 - s * 4)) for s in range(1, 21)]  # battery down to 10 %
    items.insert(5, items[4])  # a duplicate
    items.append((topic, reading(21, 9, emergency=True)))
    items.append((topic, reading(3, 99)))  # late duplicate, out of order
    items.append((topic, b'{"seq": 22, "battery_pct": 140, "ts": 1795428022000}'))
    items.append((topic, b"definitely not json"))
    publish(up.mqtt_port, items)

    wait_for(lambda: up.get(f"/api/v1/drones/{DRONE}")["seq"] == 21, what="live state at seq 21")
    state = up.get(f"/api/v1/drones/{DRONE}")
    assert state["battery_pct"] == 9 and state["status"] == "in_flight"
    wait_for(
        lambda: len(up.get(f"/api/v1/drones/{DRONE}/telemetry?limit=100")["items"]) == 21,
        what="21 in history",
    )
    history = up.get(f"/api/v1/drones/{DRONE}/telemetry?limit=100")["items"]
    assert [h["seq"] for h in history] == list(range(21, 0, -1))  # newest first, no duplicates

    alerts = {a["type"]: a for a in up.get(f"/api/v1/alerts?state=open&drone_id={DRONE}")["items"]}
    assert alerts["emergency"]["severity"] == "critical"
    assert alerts["low_battery"]["severity"] == "critical"

    reasons = [d["reason"] for d in up.get("/api/v1/deadletters")["items"]]
    assert any("battery_pct" in r for r in reasons) and any(
        r.startswith("not JSON") for r in reasons
    )

    nearby = up.get("/api/v1/drones/nearby?lat=37.80&lon=-122.27&radius_km=5")["items"]
    assert [d["drone_id"] for d in nearby] == [DRONE]
    assert len(up.get("/api/v1/stations")["items"]) == 50
    assert up.status(f"/api/v1/drones/nope-{DRONE}") == 404


def test_http_ingest_reaches_live_state(up: Up) -> None:
    body = orjson.dumps(
        [{**orjson.loads(reading(1, 70)), "drone_id": "http-1"}, {"drone_id": "http-1"}]
    )
    req = urllib.request.Request(
        up.url("/api/v1/telemetry"),
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 202
        assert json.loads(r.read())["accepted"] == 1
    wait_for(lambda: up.get("/api/v1/drones/http-1")["battery_pct"] == 70, what="http drone live")


def test_ctrl_c_stops_everything_and_data_survives_restart(up: Up, data_dir: Path) -> None:
    assert processes_using(data_dir), "expected server and child processes"
    assert up.stop(signal.SIGINT) == 0
    wait_for(lambda: not processes_using(data_dir), timeout=15, what="no orphan processes")

    up.start()  # same data dir
    history = up.get(f"/api/v1/drones/{DRONE}/telemetry?limit=100")["items"]
    assert len(history) == 21
    assert up.get(f"/api/v1/drones/{DRONE}")["seq"] == 21  # Redis AOF kept the live state
    assert up.stop(signal.SIGTERM) == 0


def test_children_die_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    u = Up(tmp_path / "killed")
    u.start()
    assert u.proc is not None
    u.proc.send_signal(signal.SIGKILL)
    u.proc.wait(10)
    u.log.close()
    wait_for(
        lambda: not processes_using(u.data_dir), timeout=20, what="children gone after kill -9"
    )
