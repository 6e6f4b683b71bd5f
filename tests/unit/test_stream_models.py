"""The stream models on the simulator's flights: battery health (a drone whose energy per km
rises gets ``maintenance_due``, a steady one never does) and anomalies (a burst is found, with
its score and what drove it; normal flight almost never is); their state across a restart;
and their discovery through the package's entry points."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from typing import Any

import pytest

from skyhive.bench.models import Flights, run_models_bench
from skyhive.domain.stream_models import ENTRY_POINT_GROUP, FLYING, DroneFinding
from skyhive.models.anomaly import RiverAnomaly
from skyhive.models.battery_health import BatteryHealth
from skyhive.models.config import ModelsConfig
from skyhive.models.plugins import ModelPluginError, installed, load_enabled
from skyhive.simulator.drone import Phase
from skyhive.simulator.faults import FaultKind

HOUR = 3600.0


def warnings(found: list[DroneFinding]) -> list[dict[str, Any]]:
    return [f.details for _, f in found if f.severity == "warning"]


# -- battery health ------------------------------------------------------------------------------


def test_the_baseline_is_the_drones_own_energy_per_km() -> None:
    f = Flights.of(1, seed=5)
    drone = f.drones[0]
    model = BatteryHealth({})
    assert model.observe(f.fly(HOUR), {drone.drone_id: drone.spec}) == []
    state = model.state(drone.drone_id)
    assert state is not None and state["baseline"] is not None
    # Cruise costs the spec's consumption (8 Wh/km); climbs, descents and hovering are not counted.
    assert state["baseline"] == pytest.approx(drone.spec.consumption_wh_per_km, rel=0.02)


def test_energy_per_km_up_40_percent_gets_maintenance_due_after_the_window() -> None:
    f = Flights.of(1, seed=5)
    drone = f.drones[0]
    specs = {drone.drone_id: drone.spec}
    model = BatteryHealth({})
    assert model.observe(f.fly(2 * HOUR), specs) == []  # baseline, then steady
    drone.battery.pct_per_km *= 1.4  # the battery has aged
    found = model.observe(f.fly(3 * HOUR), specs)
    raised = warnings(found)
    assert raised, "no maintenance_due after three hours at +40%"
    assert {f.type for _, f in found} == {"maintenance_due"}
    first = raised[0]
    assert first["drift_share"] > 0.25 and first["window_km"] >= 5.0
    assert first["baseline_wh_per_km"] == pytest.approx(8.0, rel=0.02)
    assert "above this drone's baseline" in first["message"]
    # Once the window is all aged flight, the drift is the 40% put in.
    assert raised[-1]["drift_share"] == pytest.approx(0.4, abs=0.03)
    assert model.metrics()["drifting"] == 1.0

    drone.battery.pct_per_km /= 1.4  # a new battery
    after = model.observe(f.fly(2 * HOUR), specs)
    cleared = [f for _, f in after if f.severity is None]
    assert len(cleared) == 1 and cleared[0].type == "maintenance_due"
    assert after[-1][1].severity is None  # nothing raised after the clearing
    assert model.metrics()["drifting"] == 0.0


def test_a_steady_drone_never_gets_maintenance_due() -> None:
    f = Flights.of(2, seed=11)
    specs = {d.drone_id: d.spec for d in f.drones}
    model = BatteryHealth({})
    assert model.observe(f.fly(6 * HOUR), specs) == []
    assert model.metrics() == {"drones": 2.0, "baselined": 2.0, "drifting": 0.0}


def test_a_drone_not_in_the_registry_is_not_judged() -> None:
    f = Flights.of(1, seed=5)
    model = BatteryHealth({})
    f.drones[0].battery.pct_per_km *= 2
    assert model.observe(f.fly(2 * HOUR), {}) == []
    assert model.metrics()["drones"] == 0.0


# -- anomalies ---------------------------------------------------------------------------------


def test_a_drain_burst_is_an_anomaly_with_its_score_and_what_drove_it() -> None:
    f = Flights.of(1, seed=7)
    drone = f.drones[0]
    model = RiverAnomaly({})
    assert model.observe(f.fly(2 * HOUR), {}) == []
    while drone.phase is not Phase.CRUISE:
        assert model.observe(f.fly(1), {}) == []
    drone.start_fault(FaultKind.BATTERY_DRAIN, f.now_ms, f.rng)  # ten times the usual drain
    found = model.observe(f.fly(20), {})
    assert len(found) >= 15
    assert {(d, f.type, f.severity) for d, f in found} == {(drone.drone_id, "anomaly", "warning")}
    details = found[0][1].details
    assert details["score"] > details["threshold"] == 10.0
    assert details["phase"] == "cruise"
    top = details["drivers"][0]
    assert top["feature"] == "drain_pct_per_min"
    assert abs(top["z"]) == details["score"]
    assert top["value"] > top["mean"] + 10 * top["sd"]
    assert details["message"].startswith("drain_pct_per_min")
    assert set(details["features"]) >= {"speed_mps", "climb_mps", "drain_pct_per_min"}


def test_a_gps_glitch_is_an_anomaly_driven_by_the_speed_gap() -> None:
    f = Flights.of(1, seed=7)
    drone = f.drones[0]
    model = RiverAnomaly({})
    model.observe(f.fly(2 * HOUR), {})
    while drone.phase is not Phase.CRUISE:
        model.observe(f.fly(1), {})
    drone.start_fault(FaultKind.GPS_JUMP, f.now_ms, f.rng)
    found = model.observe(f.fly(2), {})  # the glitched reading, and the one back
    assert found and all(f.details["drivers"][0]["feature"] == "speed_gap_mps" for _, f in found)


def test_normal_flight_rarely_raises_an_anomaly() -> None:
    f = Flights.of(6, seed=3)
    model = RiverAnomaly({})
    found = model.observe(f.fly(2.5 * HOUR), {})
    flying = sum(t.status in FLYING for t in f.readings)
    assert flying > 30_000
    # Measured at the default threshold: 1 in ~135,000 readings in flight.
    assert len(found) <= flying / 10_000
    assert model.metrics() == {"drones": 6.0, "warm_drones": 6.0}


def test_nothing_is_raised_before_the_warm_up() -> None:
    f = Flights.of(1, seed=7)
    drone = f.drones[0]
    model = RiverAnomaly({"warmup": 100_000})
    model.observe(f.fly(HOUR), {})
    while drone.phase is not Phase.CRUISE:
        model.observe(f.fly(1), {})
    drone.start_fault(FaultKind.BATTERY_DRAIN, f.now_ms, f.rng)
    assert model.observe(f.fly(30), {}) == []


# -- state across a restart ----------------------------------------------------------------------


@pytest.mark.parametrize("make", [BatteryHealth, RiverAnomaly], ids=["battery", "anomaly"])
def test_a_model_restored_from_its_saved_state_goes_on_as_if_never_stopped(make: Any) -> None:
    f = Flights.of(2, seed=13)
    drone = f.drones[0]
    specs = {d.drone_id: d.spec for d in f.drones}
    first = f.fly(1.5 * HOUR)
    while drone.phase is not Phase.CRUISE:
        first += f.fly(1)
    drone.battery.pct_per_km *= 1.5
    drone.start_fault(FaultKind.BATTERY_DRAIN, f.now_ms, f.rng)
    second = f.fly(2 * HOUR)

    whole = make({})
    expected = whole.observe(first, specs) + whole.observe(second, specs)
    assert expected  # something to compare

    before = make({})
    before.observe(first, specs)
    after = make({})  # a new process
    for d in f.drones:
        saved = json.loads(json.dumps(before.state(d.drone_id)))  # as stored: JSON values only
        after.restore(d.drone_id, saved)
    assert after.observe(second, specs) == expected
    assert after.state(drone.drone_id) == whole.state(drone.drone_id)


# -- discovery -----------------------------------------------------------------------------------


def test_the_package_declares_both_models_as_entry_points() -> None:
    declared = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert declared["battery_health"] == "skyhive.models.battery_health:BatteryHealth"
    assert declared["anomaly"] == "skyhive.models.anomaly:RiverAnomaly"
    assert set(installed()) >= {"battery_health", "anomaly"}


def test_the_enabled_models_are_built_with_their_settings() -> None:
    config = ModelsConfig.model_validate(
        {"enabled": ["anomaly", "battery_health"], "battery_health": {"drift_share": 0.3}}
    )
    models = load_enabled(config)
    assert [m.name for m in models] == ["anomaly", "battery_health"]
    assert isinstance(models[1], BatteryHealth) and models[1].config.drift_share == 0.3
    assert load_enabled(ModelsConfig(enabled=())) == []


def test_an_enabled_model_that_is_not_installed_is_refused_by_name() -> None:
    with pytest.raises(ModelPluginError, match=r"\['mine'\] are not installed"):
        load_enabled(ModelsConfig(enabled=("battery_health", "mine")))


def test_the_benchmark_times_every_enabled_model() -> None:
    report = run_models_bench(2, 1.0, ModelsConfig(), seed=3)
    assert report.readings == 2 * 60
    assert [r.model for r in report.runs] == ["battery_health", "anomaly"]
    assert all(r.readings_per_s > 0 and r.us_per_reading > 0 for r in report.runs)
    assert report.decode_per_s > 0
