"""`skyhive up` as a user runs it: real processes, real MQTT, the HTTP API, restart, shutdown."""

from __future__ import annotations

import signal
import stat
import threading
import urllib.error
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from e2e.harness import Up, processes_using, role_pids, wait_for

pytestmark = pytest.mark.e2e
BASE_MS = 1795428000000
DRONE = "e2e-1"


def publish(port: int, items: list[tuple[str, bytes]], login: tuple[str, str]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="e2e-publisher")
    c.username_pw_set(*login)
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


def register(up: Up, drone_id: str) -> tuple[str, str]:
    """Register a drone the way an operator does; its MQTT login (printed once), once the
    broker lets it in (amqtt reads the store at each CONNECT; Mosquitto's files are rewritten
    within about a second)."""
    out = up.run("drones", "register", drone_id, "--home-station", "12TH").splitlines()
    assert out[-3] == f"MQTT username: {drone_id}", out
    login = (drone_id, out[-1])
    wait_for(lambda: not connack(up.mqtt_port, login).is_failure, what=f"{drone_id} let in")
    return login


def connack(port: int, login: tuple[str, str] | None) -> ReasonCode:
    answer: list[ReasonCode] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"e2e-probe-{uuid.uuid4().hex[:8]}")
    if login is not None:
        c.username_pw_set(*login)
    c.on_connect = lambda client, _u, _f, rc, _p: (answer.append(rc), client.disconnect())
    c.connect("127.0.0.1", port)
    c.loop_start()
    wait_for(lambda: bool(answer), 10, "CONNACK")
    c.loop_stop()
    return answer[0]


def test_drones_need_their_own_credentials(up: Up) -> None:
    login = register(up, "e2e-cred")
    assert not connack(up.mqtt_port, login).is_failure
    assert connack(up.mqtt_port, None).is_failure  # anonymous: refused under `up`
    assert connack(up.mqtt_port, ("e2e-cred", "not-the-password")).is_failure
    new = up.run("drones", "credentials", "e2e-cred", "--rotate").splitlines()[-1]
    # The old password no longer works (on Mosquitto once its files are rewritten).
    wait_for(lambda: connack(up.mqtt_port, login).is_failure, what="the old password refused")
    assert not connack(up.mqtt_port, ("e2e-cred", new)).is_failure
    services = up.data_dir / "mqtt-services.json"
    assert services.stat().st_mode & 0o777 == 0o600


def flight_with_faults(topic: str) -> list[tuple[str, bytes]]:
    """Readings 1-21 (battery down to 9 %, an emergency last) with a duplicate, a late
    duplicate out of order, an invalid reading and one that is not JSON."""
    items = [(topic, reading(s, 90 - s * 4)) for s in range(1, 21)]  # battery down to 10 %
    items.insert(5, items[4])  # a duplicate
    items.append((topic, reading(21, 9, emergency=True)))
    items.append((topic, reading(3, 99)))  # late duplicate, out of order
    items.append((topic, b'{"seq": 22, "battery_pct": 140, "ts": 1795428022000}'))
    items.append((topic, b"definitely not json"))
    return items


def fly_with_faults(up: Up, drone: str) -> None:
    """``flight_with_faults`` from ``drone`` over MQTT: live state ends at its last reading,
    history holds each reading once, its alerts are open and its bad messages dead-lettered."""
    login = register(up, drone)
    publish(up.mqtt_port, flight_with_faults(f"skyhive/drones/{drone}/telemetry"), login)

    wait_for(lambda: up.get(f"/api/v1/drones/{drone}")["seq"] == 21, what="live state at seq 21")
    state = up.get(f"/api/v1/drones/{drone}")
    assert state["battery_pct"] == 9 and state["status"] == "in_flight"
    wait_for(
        lambda: len(up.get(f"/api/v1/drones/{drone}/telemetry?limit=100")["items"]) == 21,
        what="21 in history",
    )
    history = up.get(f"/api/v1/drones/{drone}/telemetry?limit=100")["items"]
    assert [h["seq"] for h in history] == list(range(21, 0, -1))  # newest first, no duplicates

    alerts = {a["type"]: a for a in up.get(f"/api/v1/alerts?state=open&drone_id={drone}")["items"]}
    assert alerts["emergency"]["severity"] == "critical"
    assert alerts["low_battery"]["severity"] == "critical"

    reasons = [d["reason"] for d in up.get("/api/v1/deadletters")["items"]]
    assert any("battery_pct" in r for r in reasons) and any(
        r.startswith("not JSON") for r in reasons
    )


def command_reaches(up: Up, drone: str, reason: str) -> dict[str, object]:
    """A live ``drone`` is sent ``return_to_station`` through the API; what it got over MQTT."""
    login = register(up, drone)
    publish(up.mqtt_port, [(f"skyhive/drones/{drone}/telemetry", reading(1, 80))], login)
    wait_for(lambda: up.status(f"/api/v1/drones/{drone}") == 200, what=f"{drone} live")
    got: list[dict[str, object]] = []
    subscribed = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{drone}-commands")
    c.username_pw_set(*login)
    c.on_subscribe = lambda *_a: subscribed.set()
    c.on_message = lambda _c, _u, m: got.append(orjson.loads(m.payload))
    c.connect("127.0.0.1", up.mqtt_port)
    c.subscribe(f"skyhive/drones/{drone}/commands", qos=1)
    c.loop_start()
    try:
        assert subscribed.wait(10)
        status, body = up.post(
            f"/api/v1/drones/{drone}/commands", {"action": "return_to_station", "reason": reason}
        )
        assert status == 202, body
        wait_for(lambda: bool(got), what="the command over MQTT")
    finally:
        c.disconnect()
        c.loop_stop()
    return got[0]


def test_telemetry_flows_end_to_end(up: Up) -> None:
    fly_with_faults(up, DRONE)
    # The archiver sums up the closed minute (its readings are of a past day) within a pass.
    minute = f"/api/v1/drones/{DRONE}/telemetry?level=minute&since=2026-11-23T09:59:00Z"
    wait_for(lambda: up.get(minute)["count"] == 1, what="the minute rolled up")
    [rolled] = up.get(minute)["items"]
    assert rolled["readings"] == 21 and rolled["status_s"] == {"in_flight": 20.0}
    nearby = up.get("/api/v1/drones/nearby?lat=37.80&lon=-122.27&radius_km=5")["items"]
    assert [d["drone_id"] for d in nearby] == [DRONE]
    assert len(up.get("/api/v1/stations")["items"]) == 50
    assert up.status(f"/api/v1/drones/nope-{DRONE}") == 404


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_archiver_yields_the_cpu_to_the_others(up: Up) -> None:
    """History, the forecasts and the stream models run at SKYHIVE_BULK_NICE (10): on a
    machine short of CPU,
    dispatch, alerts, live state and the API go first."""
    for argv, nice in [
        (("archiver",), 10),
        (("forecaster",), 10),
        (("models",), 10),
        (("processor", "--lane", "routine"), 0),
        (("processor", "--lane", "urgent"), 0),
        (("dispatcher",), 0),
        (("api",), 0),
        (("gateway",), 0),
    ]:
        pids = role_pids(up.data_dir, argv)
        assert pids, argv
        assert [niceness(p) for p in pids] == [nice] * len(pids), argv


def test_http_ingest_reaches_live_state(up: Up) -> None:
    body = [{**orjson.loads(reading(1, 70)), "drone_id": "http-1"}, {"drone_id": "http-1"}]
    status, out = up.post("/api/v1/telemetry", body)  # as the admin (a backfill)
    assert status == 202, out
    assert out["accepted"] == 1
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


def test_first_start_leaves_an_admin_key_and_the_api_wants_one(tmp_path: Path) -> None:
    """The first start makes an admin key, prints it once and keeps it in the data dir (mode
    600); a restart prints where it is, not a new one. Without a key only the probes answer."""
    u = Up(tmp_path / "keyed")
    u.start()
    try:
        wait_for(lambda: u.log_text().count("Press Ctrl-C to stop.") == 1, what="first banner")
        key = u.key
        assert key is not None and key.startswith("shk_")
        assert stat.S_IMODE(u.key_file.stat().st_mode) == 0o600
        first = u.log_text()
        assert first.count(key) == 1, "the key is printed once, in the banner, nowhere else"
        banner = first[first.index("SkyHive is up.") :]
        assert f"Admin API key   : {key}" in banner

        assert u.status("/healthz", key="") == 200
        assert u.status("/readyz", key="") == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            u.get("/api/v1/drones", key="")
        assert refused.value.code == 401
        assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")
        assert u.status("/api/v1/drones", key="shk_not-a-real-key") == 401
        assert u.status("/api/v1/drones") == 200  # with the key from the file
    finally:
        assert u.stop() == 0

    u.start()  # same data dir: the same key, not printed again
    try:
        wait_for(lambda: u.log_text().count("Press Ctrl-C to stop.") == 2, what="second banner")
        assert u.key == key
        text = u.log_text()
        assert text.count(key) == 1, "a restart must not print the key again"
        second = text[text.rindex("SkyHive is up.") :]
        assert f"Admin API key   : in {u.key_file.resolve()}" in second
        assert u.status("/api/v1/drones") == 200
    finally:
        assert u.stop() == 0
