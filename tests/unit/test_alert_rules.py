"""Alert rules, one reading at a time, with their edge cases."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from skyhive.domain.alert_config import AlertConfig, Thresholds
from skyhive.domain.alert_rules import (
    Context,
    Finding,
    Memory,
    Zone,
    energy_to_reach_pct,
    evaluate,
    offline_finding,
)
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import destination_point
from skyhive.domain.telemetry import Telemetry, parse_telemetry

TH = Thresholds()
T0 = 1795428000000
SPEC = DroneSpec(drone_id="d1", home_station="12TH")  # 500 Wh, 8 Wh/km: 1.6 % per km


def reading(
    seq: int, battery: float = 80.0, at_s: float | None = None, **extra: object
) -> Telemetry:
    ts = T0 + int((seq if at_s is None else at_s) * 1000)
    body = {"drone_id": "d1", "seq": seq, "ts": ts, "battery_pct": battery, **extra}
    return parse_telemetry(orjson.dumps(body))


def judge(
    t: Telemetry, ctx: Context | None = None, mem: Memory | None = None
) -> dict[str, Finding]:
    return {f.type: f for f in evaluate(t, ctx or Context(TH), mem or Memory())}


def sev(t: Telemetry, kind: str, **ctx: object) -> str | None:
    found = judge(t, Context(TH, **ctx))  # type: ignore[arg-type]
    return found[kind].severity if kind in found else "not judged"


def test_low_battery_thresholds_are_strictly_below_with_hysteresis_to_clear() -> None:
    assert sev(reading(1, 9.99), "low_battery") == "critical"
    assert sev(reading(1, 10.0), "low_battery") == "warning"
    assert sev(reading(1, 24.99), "low_battery") == "warning"
    assert sev(reading(1, 25.0), "low_battery") == "not judged"  # inside the hysteresis band
    assert sev(reading(1, 26.99), "low_battery") == "not judged"
    assert sev(reading(1, 27.0), "low_battery") is None


def test_emergency_by_flag_or_status() -> None:
    assert sev(reading(1, emergency=True), "emergency") == "critical"
    assert sev(reading(1, status="emergency"), "emergency") == "critical"
    assert sev(reading(1, status="in_flight"), "emergency") is None


def test_altitude_above_the_ceiling_only() -> None:
    assert sev(reading(1, alt_m=120.0), "altitude") is None
    assert sev(reading(1, alt_m=120.1), "altitude") == "warning"
    assert sev(reading(1), "altitude") == "not judged"  # no altitude reported


def test_overspeed_above_the_limit_only() -> None:
    assert sev(reading(1, speed_mps=30.0), "overspeed") is None
    assert sev(reading(1, speed_mps=30.5), "overspeed") == "warning"


def test_cannot_reach_station_before_low_battery_would() -> None:
    # 20 km from the nearest station: 32 % needed + 10 % reserve > 40 % left; far above the
    # low-battery thresholds.
    far = reading(1, 40.0, status="in_flight")
    assert sev(far, "cannot_reach_station", spec=SPEC, nearest_station=("12TH", 20.0)) == "critical"
    assert sev(far, "low_battery") is None
    found = judge(far, Context(TH, SPEC, ("12TH", 20.0)))["cannot_reach_station"]
    assert found.details["station"] == "12TH" and found.details["needed_pct"] == 32.0


def test_cannot_reach_station_exactly_at_the_reserve_is_not_raised() -> None:
    km = 10.0
    needed = energy_to_reach_pct(SPEC, km)  # 16 %
    at_reserve = reading(1, needed + TH.reach_reserve_pct, status="in_flight")
    assert sev(at_reserve, "cannot_reach_station", spec=SPEC, nearest_station=("X", km)) is None
    below = reading(1, needed + TH.reach_reserve_pct - 0.01, status="in_flight")
    assert sev(below, "cannot_reach_station", spec=SPEC, nearest_station=("X", km)) == "critical"


def test_cannot_reach_station_is_cleared_when_docked_and_not_judged_without_a_spec() -> None:
    docked = reading(1, 5.0, status="charging")
    assert sev(docked, "cannot_reach_station", spec=SPEC, nearest_station=("X", 50.0)) is None
    flying = reading(1, 5.0, status="in_flight")
    assert sev(flying, "cannot_reach_station", nearest_station=("X", 5.0)) == "not judged"


def test_geofence_names_the_zones_and_is_not_judged_without_a_position() -> None:
    t = reading(1, lat=37.8, lon=-122.27)
    zone = Zone("gf-1", "Stadium")
    found = judge(t, Context(TH, zones=(zone,)))["geofence"]
    assert found.severity == "critical" and found.details["zones"] == [
        {"id": "gf-1", "name": "Stadium"}
    ]
    assert judge(t, Context(TH, zones=()))["geofence"].severity is None
    assert "geofence" not in judge(reading(1), Context(TH, zones=None))


def test_gps_jump_from_the_previous_position() -> None:
    mem = Memory()
    evaluate(reading(1, lat=37.8, lon=-122.27), Context(TH), mem)
    lat, lon = destination_point(37.8, -122.27, 90, 79)  # 79 m in 1 s: under 80 m/s
    assert judge(reading(2, lat=lat, lon=lon), mem=_copy(mem))["gps_jump"].severity is None
    lat, lon = destination_point(37.8, -122.27, 90, 500)  # 500 m in 1 s
    jump = judge(reading(2, lat=lat, lon=lon), mem=_copy(mem))["gps_jump"]
    assert jump.severity == "critical" and jump.details["implied_mps"] > 400


def test_battery_drop_within_the_window() -> None:
    mem = Memory()
    for i, pct in enumerate((90, 89, 88, 87, 86, 85, 84, 83, 82, 81, 80)):
        evaluate(reading(i, pct, at_s=i * 5), Context(TH), mem)
    # 90 → 74 within 60 s: a 16 % drop
    assert judge(reading(20, 74, at_s=55), mem=_copy(mem))["battery_drop"].severity == "critical"
    # the same level once the 90 % sample has left the window is a drop of under 15 %
    assert judge(reading(20, 74, at_s=66), mem=_copy(mem))["battery_drop"].severity is None


def test_every_reading_clears_offline() -> None:
    assert judge(reading(1))["offline"].severity is None


def test_offline_limits_in_flight_and_docked() -> None:
    at = datetime.now(UTC)
    assert offline_finding(15.0, True, TH, at, "in_flight") is None
    found = offline_finding(15.1, True, TH, at, "in_flight")
    assert found is not None and found.severity == "critical"
    assert offline_finding(599.0, False, TH, at, "charging") is None
    docked = offline_finding(601.0, False, TH, at, "charging")
    assert docked is not None and docked.severity == "warning"


def test_memory_round_trips_and_orders_readings() -> None:
    mem = Memory()
    evaluate(reading(5, lat=37.8, lon=-122.27), Context(TH), mem)
    again = Memory.decode(orjson.loads(orjson.dumps(mem.encode())))
    assert again == mem
    assert not again.is_newer(reading(4))  # older: history only, never judged
    assert not again.is_newer(reading(5))
    assert again.is_newer(reading(6))


def test_thresholds_per_model_and_validation() -> None:
    cfg = AlertConfig(models={"heavy-lifter": {"altitude_ceiling_m": 90}})
    assert cfg.for_model("heavy-lifter").altitude_ceiling_m == 90
    assert cfg.for_model("other").altitude_ceiling_m == 120
    assert cfg.for_model(None) is cfg.defaults
    with pytest.raises(ValueError):
        AlertConfig(models={"x": {"no_such_threshold": 1}})
    with pytest.raises(ValueError):
        Thresholds(low_battery_warning_pct=5, low_battery_critical_pct=10)
    assert not cfg.resolves_itself("gps_jump") and cfg.resolves_itself("geofence")


def _copy(mem: Memory) -> Memory:
    return Memory.decode(mem.encode())


def test_a_jumped_position_is_an_outlier_until_confirmed() -> None:
    mem = Memory()
    far = destination_point(37.8, -122.27, 0, 5_000)
    evaluate(reading(1, lat=37.8, lon=-122.27), Context(TH), mem)
    assert judge(reading(2, lat=far[0], lon=far[1]), mem=mem)["gps_jump"].severity == "critical"
    # back where it was: compared with the last trusted position, not with the jump
    assert judge(reading(3, lat=37.8, lon=-122.27), mem=_copy(mem))["gps_jump"].severity is None
    # the drone really is there: after three readings in a row there, it is accepted
    for seq in (3, 4):
        evaluate(reading(seq, lat=far[0], lon=far[1]), Context(TH), mem)
    assert judge(reading(5, lat=far[0], lon=far[1]), mem=mem)["gps_jump"].severity is None


def test_a_battery_drop_is_reported_once_not_again_from_the_same_samples() -> None:
    mem = Memory()
    evaluate(reading(1, 90), Context(TH), mem)
    assert judge(reading(2, 65), mem=mem)["battery_drop"].severity == "critical"
    assert judge(reading(3, 65), mem=mem)["battery_drop"].severity is None
