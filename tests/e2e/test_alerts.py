"""Alerts end to end: `skyhive up` with a webhook channel and short thresholds, and simulated
drones that each have one fault right after take-off (`simulate --fault-once`). Every alert
type a fault stands for is raised, acknowledged through the API, and resolved (by itself once
its condition clears; by a person for gps_jump and battery_drop), and the webhook hears of
both the opening and the resolution.

Each fault flies in a simulator of its own (one drone, seeded), so each alert has a known
drone. Time scales stay below 5x: a drone cruising at 15 m/s in a faster simulation moves
more than 80 m between readings a second apart, which the server rightly calls a GPS jump.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from e2e.harness import Up, wait_for
from skyhive.domain.stations import bart_stations

pytestmark = pytest.mark.e2e
T = TypeVar("T")

# A lone drone takes off from 12TH within a second, towards WOAK: never near 16TH.
SEED = "12"
# The second of two drones starts at 16TH (stations[1]) and leaves a 220 m zone within ~12 s
# at 4x (the first starts at 12TH and never comes near).
FENCE_SEED = "21"
BY = "e2e-operator"  # the name of the operator key that acts on the alerts


@dataclass(frozen=True)
class Case:
    alert: str  # the alert type expected
    drone: str
    simulate: tuple[str, ...]  # the simulator's options
    manual: bool = False  # resolved by a person, not by itself
    drones: int = 1

    @property
    def prefix(self) -> str:
        return self.drone.rsplit("-", 1)[0]


def once(kind: str, scale: float, *extra: str) -> tuple[str, ...]:
    return ("--seed", SEED, "--fault-once", kind, "--time-scale", f"{scale:g}", *extra)


CASES = [
    # Hovers 15-60 simulated s: 7-30 s at 2x.
    Case("emergency", "emg-0001", once("emergency", 2)),
    # One reading 2-5 km off; the alert waits for a person.
    Case("gps_jump", "jump-0001", once("gps_jump", 4), manual=True),
    # 20-30 points lost at once (82 % → 52-62 %: no low_battery); waits for a person.
    Case("battery_drop", "cell-0001", once("battery_drop", 4), manual=True),
    # A gust of 5-12 s at 31-40 m/s: real time, so there is time to acknowledge it.
    Case("overspeed", "gust-0001", once("overspeed", 1)),
    # Climbs to 125-150 m (about 15 s at 3x), then 8-20 simulated s above 120 m.
    Case("altitude", "high-0001", once("altitude", 3)),
    # Silent for 10 s of wall-clock time; offline after 3 s in flight (env below).
    Case("offline", "mute-0001", once("offline", 4, "--offline-s", "10")),
    # Docked inside the zone made below from the start; out of it once it has climbed away.
    Case("geofence", "fence-0002", ("--seed", FENCE_SEED, "--time-scale", "4"), drones=2),
]


class Webhook:
    """A local HTTP server standing in for a json:// channel: records the JSON bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        lock = threading.Lock()
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsed": raw.decode(errors="replace")}
                with lock:
                    bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def heard(self, drone: str, alert_type: str, resolved: bool) -> bool:
        """A notification naming the drone and the alert type, of its resolution or not."""
        for body in list(self.bodies):
            text = f"{body.get('title', '')}\n{body.get('message', '')}"
            if drone in text and alert_type in text and ("resolved" in text.lower()) == resolved:
                return True
        return False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_value(get: Callable[[], T | None], timeout: float, what: str) -> T:
    found: list[T] = []

    def ready() -> bool:
        value = get()
        if value is not None:
            found.append(value)
        return value is not None

    wait_for(ready, timeout, what)
    return found[-1]


def square_around(lat: float, lon: float, half_deg: float = 0.002) -> dict[str, Any]:
    """A GeoJSON square, about 220 m each way from (lat, lon) in the Bay Area."""
    d_lon = half_deg * 1.25  # a degree of longitude is shorter at 37.8° N
    ring = [
        [lon - d_lon, lat - half_deg],
        [lon + d_lon, lat - half_deg],
        [lon + d_lon, lat + half_deg],
        [lon - d_lon, lat + half_deg],
        [lon - d_lon, lat - half_deg],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def test_every_fault_is_alerted_acknowledged_resolved_and_notified(
    tmp_path: Path, webhook: Webhook
) -> None:
    channel = {"name": "hook", "url": f"json://127.0.0.1:{webhook.port}/alerts"}
    up = Up(
        tmp_path / "data",
        env={
            "SKYHIVE_NOTIFY__CHANNELS": json.dumps([channel]),
            "SKYHIVE_NOTIFY__THROTTLE_S": "0",  # the resolution follows the opening closely
            "SKYHIVE_ALERTS__DEFAULTS__OFFLINE_IN_FLIGHT_S": "3",
        },
    )
    up.start()
    sims = []
    try:
        # The operator acting on the alerts: who acknowledges is the key's name.
        status, made = up.post("/api/v1/keys", {"name": BY, "role": "operator"})
        assert status == 201, made
        operator_key = made["key"]
        station = bart_stations()[1]
        status, zone = up.post(
            "/api/v1/geofences",
            {
                "name": f"e2e no-fly over {station.code}",
                "geometry": square_around(station.lat, station.lon),
            },
        )
        assert status == 201, zone
        for case in CASES:
            sims.append(
                up.skyhive(
                    "simulate",
                    "--drones",
                    str(case.drones),
                    "--rate",
                    "2",
                    "--duration",
                    "120",  # a safety net: they are stopped below
                    "--id-prefix",
                    case.prefix,
                    *case.simulate,
                )
            )

        def follow(case: Case) -> dict[str, Any]:
            """Raised → acknowledged → resolved, as an operator would see it."""
            query = urllib.parse.urlencode({"drone_id": case.drone, "type": case.alert})

            def first() -> dict[str, Any] | None:
                items = up.get(f"/api/v1/alerts?{query}")["items"]
                return items[-1] if items else None  # newest first

            alert = wait_value(first, 40, f"a {case.alert} alert for {case.drone}")
            path = f"/api/v1/alerts/{urllib.parse.quote(alert['id'], safe='')}"
            assert alert["state"] == "open", alert
            if case.alert == "geofence":
                assert [z["id"] for z in alert["details"]["zones"]] == [zone["id"]], alert
            status, acked = up.post(f"{path}/ack", {"note": "looking into it"}, operator_key)
            assert status == 200, f"acknowledging {case.alert} of {case.drone}: {acked}"
            assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == BY
            if case.manual:
                status, done = up.post(f"{path}/resolve", {"note": "checked"}, operator_key)
                assert status == 200, f"resolving {case.alert} of {case.drone}: {done}"
            wait_for(
                lambda: up.get(path)["state"] == "resolved",
                45,
                f"the {case.alert} alert of {case.drone} resolved",
            )
            final: dict[str, Any] = up.get(path)
            assert final["resolved_by"] == (BY if case.manual else "auto"), final
            assert final["acknowledged_by"] == BY
            wait_for(
                lambda: webhook.heard(case.drone, case.alert, resolved=False),
                20,
                f"the webhook told of the {case.alert} alert of {case.drone}",
            )
            wait_for(
                lambda: webhook.heard(case.drone, case.alert, resolved=True),
                20,
                f"the webhook told of the {case.alert} alert of {case.drone} resolved",
            )
            return final

        # Together: some conditions clear within seconds, so each must be acknowledged while
        # it still holds.
        with ThreadPoolExecutor(len(CASES)) as pool:
            finals = list(pool.map(follow, CASES))
        assert [(f["drone_id"], f["type"]) for f in finals] == [(c.drone, c.alert) for c in CASES]
        jumps = up.get("/api/v1/alerts?drone_id=jump-0001&type=gps_jump")["items"]
        assert len(jumps) == 1, jumps  # one glitch; the drone itself never jumped
    finally:
        for sim in sims:
            sim.terminate()
        for sim in sims:
            try:
                sim.wait(30)
            except subprocess.TimeoutExpired:  # seen once in CI; its output is in the up log
                sim.kill()
                sim.wait(10)
        up.stop()
