"""The alerting engine against the real embedded Redis and MongoDB: telemetry in through the
real ingest and processor, alerts out on the stream, in MongoDB and in Redis."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient

from skyhive.adapters.active_alerts import alert_state_key
from skyhive.adapters.system_clock import SystemClock
from skyhive.api import create_app
from skyhive.bootstrap import bootstrap
from skyhive.domain.access import Role
from skyhive.domain.alert_lifecycle import fold
from skyhive.domain.alert_rules import Finding
from skyhive.domain.alerts import Alert
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import destination_point
from skyhive.domain.stations import bart_stations
from skyhive.ports.active_alerts import AlertSwap
from skyhive.ports.fleet_state import FleetState, Recall
from skyhive.services.alerting import AlertEngine
from skyhive.services.api_keys import create_key
from skyhive.services.ingest import RawMessage
from skyhive.services.offline_watch import OfflineWatch
from skyhive.services.processor import Processor
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers.archiver import build_archiver
from skyhive.workers.processor import build_processor

STATION = next(s for s in bart_stations() if s.code == "12TH")


class LaterClock(SystemClock):
    """The system's time, moved on by the test instead of waiting for it."""

    def __init__(self) -> None:
        self._ahead = timedelta()

    def now(self) -> datetime:
        return super().now() + self._ahead

    def advance(self, seconds: float) -> None:
        self._ahead += timedelta(seconds=seconds)


_seq: dict[str, int] = {}


@pytest.fixture
def world(clients: Clients) -> tuple[Clients, Processor]:
    bootstrap(clients)
    p = build_processor(clients, "t")
    p.setup()
    return clients, p


def report(
    world: tuple[Clients, Processor], drone: str, battery: float = 80.0, **extra: Any
) -> None:
    """One reading through the real ingest and processor, a second after the previous."""
    clients, p = world
    _seq[drone] = _seq.get(drone, 0) + 1
    seq = _seq[drone]
    body = {
        "drone_id": drone,
        "seq": seq,
        "ts": int(time.time() * 1000) + seq * 1000,
        "battery_pct": battery,
        "lat": STATION.lat,
        "lon": STATION.lon,
        "status": "in_flight",
        **extra,
    }
    clients.ingest.submit([RawMessage(orjson.dumps(body), "test")])
    while p.poll():
        pass


def alerts_of(clients: Clients, drone: str, state: str | None = None) -> dict[str, Alert]:
    return {a.type: a for a in clients.alerts.list(state=state, drone_id=drone)}


def changes(clients: Clients) -> list[tuple[str, str, str]]:
    stream = clients.redis_bytes.xrange(clients.settings.alerts_stream)
    out = []
    for _, fields in stream:
        body = orjson.loads(fields[b"v"])
        out.append((body["drone_id"], body["type"], body["change"]))
    return out


def test_low_battery_opens_escalates_deescalates_and_resolves_itself(world: Any) -> None:
    clients, _ = world
    report(world, "b1", 20)
    report(world, "b1", 8)
    report(world, "b1", 20)
    report(world, "b1", 26)  # inside the hysteresis band: still open
    assert alerts_of(clients, "b1")["low_battery"].state == "open"
    report(world, "b1", 60)
    alert = alerts_of(clients, "b1")["low_battery"]
    assert alert.state == "resolved" and alert.resolved_by == "auto"
    assert alert.count == 3 and alert.severity == "warning"
    kinds = [c for d, t, c in changes(clients) if (d, t) == ("b1", "low_battery")]
    assert kinds == ["opened", "escalated", "deescalated", "resolved"]
    assert clients.redis_text.hgetall(alert_state_key("b1")) == {}


def test_out_of_order_and_duplicate_readings_never_move_an_alert_back(world: Any) -> None:
    clients, p = world
    now = int(time.time() * 1000)
    sub = clients.ingest.submit

    def send(seq: int, battery: float) -> None:
        body = {"drone_id": "o1", "seq": seq, "ts": now + seq * 1000, "battery_pct": battery}
        sub([RawMessage(orjson.dumps(body), "test")])
        while p.poll():
            pass

    send(5, 8)  # critical
    send(4, 60)  # older, arriving late: history only
    send(5, 8)  # duplicate
    alert = alerts_of(clients, "o1")["low_battery"]
    assert alert.state == "open" and alert.severity == "critical" and alert.count == 1
    archiver = build_archiver(clients, "t")
    archiver.setup()
    while archiver.poll():
        pass
    assert clients.telemetry.count_for("o1") == 2  # both in history


def test_cannot_reach_station_commands_the_drone_home_and_says_so(world: Any) -> None:
    clients, _ = world
    clients.fleet.register(DroneSpec(drone_id="r1", home_station="12TH"))
    # 40 km west of Oakland, over the Pacific, 25 km from Daly City: the 40 % that needs
    # leaves 5 % of 45, under the 10 % reserve, far above the low-battery thresholds.
    lat, lon = destination_point(STATION.lat, STATION.lon, 270, 40_000)
    report(world, "r1", 45, lat=lat, lon=lon)
    alert = alerts_of(clients, "r1")["cannot_reach_station"]
    assert alert.severity == "critical" and "low_battery" not in alerts_of(clients, "r1")
    assert alert.details is not None and alert.action is not None
    assert alert.details["station"] == "DALY" and alert.details["needed_pct"] == 40.1
    action = alert.action
    assert action["type"] == "return_to_station" and action["station"] == alert.details["station"]
    [(_, fields)] = clients.redis_bytes.xrange(clients.settings.commands_stream)
    assert fields[b"k"] == b"r1"
    command = orjson.loads(fields[b"v"])
    assert command["type"] == "return_to_station"
    assert command["return_station"]["station"] == action["station"]


@pytest.mark.parametrize(
    ("kind", "bad", "good"),
    [
        ("altitude", {"alt_m": 150.0}, {"alt_m": 80.0}),
        ("overspeed", {"speed_mps": 45.0}, {"speed_mps": 12.0}),
        ("emergency", {"emergency": True}, {"emergency": False}),
    ],
)
def test_conditions_open_and_resolve_with_the_readings(
    world: Any, kind: str, bad: dict[str, Any], good: dict[str, Any]
) -> None:
    clients, _ = world
    drone = f"c-{kind}"
    report(world, drone, **good)
    report(world, drone, **bad)
    assert (alerts_of(clients, drone, "open")[kind].details or {})["seq"] == _seq[drone]
    report(world, drone, **good)
    # A critical one nobody acknowledged waits for a person.
    unacked = "resolved_unacknowledged" if kind == "emergency" else "resolved"
    assert alerts_of(clients, drone)[kind].state == unacked


def test_gps_jump_stays_open_until_a_person_resolves_it(world: Any) -> None:
    clients, _ = world
    report(world, "j1")
    lat, lon = destination_point(STATION.lat, STATION.lon, 0, 5_000)  # 5 km in a second
    report(world, "j1", lat=lat, lon=lon)
    report(world, "j1", lat=lat, lon=lon)
    alert = alerts_of(clients, "j1")["gps_jump"]
    assert alert.state == "open" and (alert.details or {})["implied_mps"] > 1000


def test_offline_by_the_server_clock_and_resolved_when_heard_again(
    world: Any, make_settings: Any
) -> None:
    clients, _ = world
    quick: Settings = make_settings(
        mongodb_db=clients.settings.mongodb_db,
        alerts={"defaults": {"offline_in_flight_s": 1.0, "offline_docked_s": 2.5}},
    )
    later = LaterClock()  # heard by the processor's (system) clock, swept by this one
    engine = AlertEngine(
        quick,
        active=clients.active_alerts,
        store=clients.alerts,
        feed=clients.live,
        bus=clients.bus,
        stations=clients.stations,
        grounding=clients.grounding,
        clock=later,
    )
    specs = SpecCache(clients.fleet, later)
    watch = OfflineWatch(quick, fleet=clients.fleet_state, engine=engine, specs=specs, clock=later)
    # A drone whose clock is an hour behind is not silent: it is heard now.
    report(world, "f1", ts=int(time.time() * 1000) - 3_600_000)
    report(world, "f2", status="charging")
    assert watch.sweep() == 0
    later.advance(1.1)
    clients.redis_text.delete("alerting:offline:lock")
    assert watch.sweep() == 1  # the flying one; the docked one has 2.5 s
    alert = alerts_of(clients, "f1")["offline"]
    assert alert.severity == "critical" and (alert.details or {})["last_status"] == "in_flight"
    later.advance(1.5)
    clients.redis_text.delete("alerting:offline:lock")
    assert watch.sweep() == 1  # now the docked one, as a warning
    assert alerts_of(clients, "f2")["offline"].severity == "warning"
    clients.redis_text.delete("alerting:offline:lock")
    assert watch.sweep() == 0  # raised once, not again every sweep
    report(world, "f1")
    assert alerts_of(clients, "f1")["offline"].state == "resolved_unacknowledged"  # critical


def test_a_restart_forgets_nothing(world: Any) -> None:
    clients, _ = world
    report(world, "s1", 20)
    fresh = build_processor(clients, "after-restart")
    fresh.setup()
    report((clients, fresh), "s1", 5)
    [alert] = clients.alerts.list(drone_id="s1")
    assert alert.severity == "critical" and alert.count == 2


# --- people acting on alerts --------------------------------------------------------------


def keyed_client(clients: Clients, name: str, role: Role = Role.operator) -> FlaskClient:
    """A test client sending a new API key named ``name``: the name alerts are acted on by."""
    _, secret = create_key(clients, name, role)
    client = create_app(clients.settings, clients).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


@pytest.fixture
def client(clients: Clients) -> FlaskClient:
    return keyed_client(clients, "dana")


def test_acknowledge_then_resolve_through_the_api(world: Any, client: FlaskClient) -> None:
    """Who acts is the key's name: the body has only a note."""
    clients, _ = world
    report(world, "h1", 5)
    alert_id = alerts_of(clients, "h1")["low_battery"].id
    r = client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "on it"})
    assert r.status_code == 200 and r.json["state"] == "acknowledged"
    assert r.json["acknowledged_by"] == "dana" and r.json["ack_note"] == "on it"
    again = client.post(f"/api/v1/alerts/{alert_id}/ack", json={})
    assert again.status_code == 409 and "acknowledged" in again.json["error"]["message"]
    report(world, "h1", 4)  # repeats count on the acknowledged alert, which stays acknowledged
    doc = client.get(f"/api/v1/alerts/{alert_id}").json
    assert doc["state"] == "acknowledged" and doc["count"] == 2 and doc["notifications"] == []
    r = keyed_client(clients, "lee").post(
        f"/api/v1/alerts/{alert_id}/resolve", json={"note": "landed"}
    )
    assert r.status_code == 200 and r.json["state"] == "resolved"
    assert r.json["resolved_by"] == "lee" and r.json["resolve_note"] == "landed"
    assert r.json["acknowledged_by"] == "dana"
    assert clients.redis_text.hget(alert_state_key("h1"), "low_battery") is None
    kinds = [c for d, _, c in changes(clients) if d == "h1"]
    assert kinds == ["opened", "acknowledged", "resolved"]


def test_the_actor_cannot_be_named_in_the_body(world: Any, client: FlaskClient) -> None:
    clients, _ = world
    report(world, "h2", 5)
    alert_id = alerts_of(clients, "h2")["low_battery"].id
    for verb in ("ack", "resolve"):
        r = client.post(f"/api/v1/alerts/{alert_id}/{verb}", json={"by": "someone else"})
        assert r.status_code == 422 and r.json["error"]["field"] == "by", r.json
    assert alerts_of(clients, "h2")["low_battery"].state == "open"  # nothing changed


def test_alert_actions_reject_bad_input(client: FlaskClient) -> None:
    missing = client.post("/api/v1/alerts/nope/ack", json={})
    assert missing.status_code == 404 and missing.json["error"]["field"] == "alert_id"
    no_body = client.post("/api/v1/alerts/nope/ack", data="x", content_type="application/json")
    assert no_body.status_code == 400
    empty = client.post("/api/v1/alerts/nope/ack", data="", content_type="application/json")
    assert empty.status_code == 400
    long_note = client.post("/api/v1/alerts/nope/resolve", json={"note": "x" * 2001})
    assert long_note.status_code == 422 and long_note.json["error"]["field"] == "note"
    long_id = client.post(f"/api/v1/alerts/{'x' * 201}/ack", json={})
    assert long_id.status_code == 400 and long_id.json["error"]["field"] == "alert_id"


def test_a_viewer_reads_alerts_but_cannot_act_on_them(world: Any, clients: Clients) -> None:
    report(world, "h3", 5)
    alert_id = alerts_of(clients, "h3")["low_battery"].id
    viewer = keyed_client(clients, "vic", Role.viewer)
    assert viewer.get(f"/api/v1/alerts/{alert_id}").json["state"] == "open"
    for verb in ("ack", "resolve"):
        r = viewer.post(f"/api/v1/alerts/{alert_id}/{verb}", json={})
        assert r.status_code == 403 and "viewer" in r.json["error"]["message"]
    assert alerts_of(clients, "h3")["low_battery"].state == "open"


def test_alerts_filtered_by_severity_type_and_since(world: Any, client: FlaskClient) -> None:
    report(world, "q1", 20)
    report(world, "q2", 5, alt_m=200.0)
    assert {
        a["drone_id"] for a in client.get("/api/v1/alerts?severity=critical").json["items"]
    } == {"q2"}
    assert [a["type"] for a in client.get("/api/v1/alerts?type=altitude").json["items"]] == [
        "altitude"
    ]
    assert client.get("/api/v1/alerts?since=2099-01-01T00:00:00Z").json["items"] == []
    assert len(client.get("/api/v1/alerts?since=2000-01-01T00:00:00Z").json["items"]) == 3
    assert client.get("/api/v1/alerts?type=bogus").status_code == 400


def test_entering_a_no_fly_zone_is_critical_with_its_name(world: Any) -> None:
    from skyhive.domain.geofence import GeofenceSpec

    clients, _ = world
    d = 0.005  # a square of about 1 km around the station
    ring = [
        [STATION.lon - d, STATION.lat - d],
        [STATION.lon + d, STATION.lat - d],
        [STATION.lon + d, STATION.lat + d],
        [STATION.lon - d, STATION.lat + d],
        [STATION.lon - d, STATION.lat - d],
    ]
    spec = GeofenceSpec.model_validate(
        {
            "name": "Oakland City Hall TFR",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "ceiling_m": 150,
        }
    )
    zone = clients.geofences.create(spec)  # before the processor's first batch: no wait
    report(world, "z1", alt_m=50.0)  # inside, below the zone's ceiling
    alert = alerts_of(clients, "z1", "open")["geofence"]
    assert alert.severity == "critical"
    assert (alert.details or {})["zones"] == [{"id": zone.id, "name": "Oakland City Hall TFR"}]
    report(world, "z1", alt_m=200.0)  # above the zone's band: out of it
    assert alerts_of(clients, "z1")["geofence"].state == "resolved_unacknowledged"  # critical


def test_one_batch_of_many_drones_judges_each_with_its_own_context(world: Any) -> None:
    clients, p = world
    now = int(time.time() * 1000)
    lat, lon = destination_point(STATION.lat, STATION.lon, 270, 40_000)  # 25 km from DALY
    for d in ("m1", "m2"):
        clients.fleet.register(DroneSpec(drone_id=d, home_station="12TH"))
    bodies = [
        {"drone_id": "m0", "status": "charging", "battery_pct": 5.0},
        {"drone_id": "m1", "status": "in_flight", "battery_pct": 45.0, "lat": lat, "lon": lon},
        {"drone_id": "m2", "status": "in_flight", "battery_pct": 90.0, "lat": lat, "lon": lon},
        {"drone_id": "m3", "status": "in_flight", "battery_pct": 80.0, "emergency": True},
    ]
    clients.ingest.submit(
        [RawMessage(orjson.dumps({"seq": 1, "ts": now, **b}), "test") for b in bodies]
    )
    while p.poll():
        pass
    assert set(alerts_of(clients, "m0")) == {"low_battery"}
    assert set(alerts_of(clients, "m1")) == {"cannot_reach_station"}
    assert alerts_of(clients, "m2") == {}
    assert set(alerts_of(clients, "m3")) == {"emergency"}


def test_an_alert_resolved_while_a_batch_folds_onto_it_stays_resolved(
    world: Any, client: FlaskClient
) -> None:
    clients, _ = world
    report(world, "x1", 5)
    alert = alerts_of(clients, "x1")["low_battery"]
    active = clients.active_alerts
    before = active.get_many(["x1"])  # a batch reads the active alert ...
    client.post(f"/api/v1/alerts/{alert.id}/resolve", json={})  # ... a person acts
    assert alert.last_seen is not None
    finding = Finding("low_battery", "critical", alert.last_seen)
    _, state = fold([("x1", finding)], before, clients.settings.alerts.resolves_itself)
    swaps = [AlertSwap(d, t, before.get((d, t)), new) for (d, t), new in state.items()]
    active.swap(swaps)  # ... and the batch's write is refused
    assert clients.redis_text.hget(alert_state_key("x1"), "low_battery") is None
    report(world, "x1", 4)  # the condition persists: a new alert, not the resolved one
    states = sorted(a.state for a in clients.alerts.list(drone_id="x1"))
    assert states == ["open", "resolved"]


def test_an_acknowledgement_survives_a_batch_folding_onto_the_alert(
    world: Any, client: FlaskClient
) -> None:
    clients, _ = world
    report(world, "x2", 5)
    alert_id = alerts_of(clients, "x2")["low_battery"].id
    client.post(f"/api/v1/alerts/{alert_id}/ack", json={})
    report(world, "x2", 20)  # de-escalates: the processor rewrites the active alert
    assert (
        clients.redis_text.hget(alert_state_key("x2"), "low_battery")
        == f"{alert_id}|warning|acknowledged"
    )


def test_an_emergency_is_judged_past_the_routine_backlog_and_only_once(world: Any) -> None:
    clients, main = world
    urgent = build_processor(clients, "u", stream=clients.settings.urgent_stream)
    urgent.setup()
    ingest = clients.ingest
    base = int(time.time() * 1000)
    routine = [
        {"drone_id": f"r{i}", "seq": 1, "ts": base, "battery_pct": 80.0, "status": "in_flight"}
        for i in range(300)
    ]
    sos = {"drone_id": "e1", "seq": 1, "ts": base, "battery_pct": 70.0, "emergency": True}
    ingest.submit([RawMessage(orjson.dumps(b), "test") for b in [*routine, sos]])

    # The main lane has not read anything yet; the urgent lane sees only the emergency.
    assert urgent.poll() == 1
    assert alerts_of(clients, "e1")["emergency"].state == "open"

    while main.poll():
        pass
    assert main.totals.received == 301
    assert main.totals.duplicates == 1  # the emergency, judged already
    emergency = alerts_of(clients, "e1")["emergency"]
    assert emergency.count == 1
    assert [c for c in changes(clients) if c[0] == "e1"] == [("e1", "emergency", "opened")]


def test_a_new_alert_is_announced_with_the_document_it_is_stored_as(world: Any) -> None:
    clients, _ = world
    report(world, "n1", 8)  # opens low_battery, critical
    (entry,) = clients.redis_bytes.xrange(clients.settings.alerts_stream)
    announced = orjson.loads(entry[1][b"v"])
    assert announced.pop("change") == "opened"
    stored = clients.alerts.get(announced["id"])
    assert stored is not None
    assert announced == orjson.loads(orjson.dumps(stored.to_json()))


class _LetsAnotherIn:
    """A routine lane's fleet state that, once the lane has read its batch's memory and
    before it folds its findings into the alerts, lets ``cut_in`` run: the other lane judging
    a newer reading of the same drone in that window (what ``skyhive up`` runs as two
    processes)."""

    def __init__(self, fleet: FleetState) -> None:
        self._fleet = fleet
        self.cut_in: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fleet, name)

    def recall(self, *args: Any) -> Recall:
        got = self._fleet.recall(*args)
        if self.cut_in is not None:
            cut_in, self.cut_in = self.cut_in, None
            cut_in()
        return got


def test_older_readings_judged_late_by_the_routine_lane_never_resolve_a_newer_emergency(
    clients: Clients,
) -> None:
    """tests/e2e/test_up.py::test_telemetry_flows_end_to_end saw the emergency resolved in
    2 of 13 runs: the routine lane read the drone's rule memory (seq 1-20 not judged yet),
    the urgent lane judged the emergency (seq 21), then the routine lane folded seq 1-20,
    not an emergency, into the alert the urgent lane had just opened, resolving it."""
    bootstrap(clients)
    clients.fleet.register(DroneSpec(drone_id="lane-1", home_station="12TH"))
    s = clients.settings
    fleet = _LetsAnotherIn(clients.fleet_state)
    routine = Processor(
        s,
        bus=clients.bus,
        fleet=fleet,
        engine=clients.alert_engine,
        specs=SpecCache(clients.fleet, clients.clock),
        geofences=clients.geofences,
        stations=clients.stations,
        deadletters=clients.deadletters,
        clock=clients.clock,
        consumer="routine",
    )
    urgent = build_processor(clients, "urgent", stream=s.urgent_stream)
    routine.setup()
    urgent.setup()
    ingest = clients.ingest
    base_ms = 1795428000000

    def body(seq: int, battery: float, **extra: Any) -> RawMessage:
        reading = {
            "drone_id": "lane-1",
            "seq": seq,
            "ts": base_ms + seq * 1000,
            "battery_pct": battery,
            "lat": STATION.lat + seq * 1e-4,
            "lon": STATION.lon,
            "status": "in_flight",
            **extra,
        }
        return RawMessage(orjson.dumps(reading), "test")

    ingest.submit([body(seq, 90 - seq * 4) for seq in range(1, 21)])

    def urgent_lane_judges_the_emergency() -> None:
        ingest.submit([body(21, 9, emergency=True)])
        assert urgent.poll() == 1
        assert alerts_of(clients, "lane-1", "open")["emergency"].severity == "critical"

    fleet.cut_in = urgent_lane_judges_the_emergency
    while routine.poll():
        pass
    assert fleet.cut_in is None  # the urgent lane did cut in

    open_now = alerts_of(clients, "lane-1", "open")
    assert open_now["emergency"].severity == "critical"
    assert open_now["low_battery"].severity == "critical"
    assert clients.redis_text.hget(alert_state_key("lane-1"), "emergency") is not None
    assert ("lane-1", "emergency", "resolved") not in changes(clients)
