"""Alert rules: conditions per reading, and folding them into one open alert per drone/type."""

from __future__ import annotations

import orjson

from skyhive.domain.alert_rules import OpenAlert, Thresholds, evaluate, fold
from skyhive.domain.telemetry import Telemetry, parse_telemetry

TH = Thresholds(low_battery_warning_pct=25, low_battery_critical_pct=10)


def reading(seq: int, battery: float, **extra: object) -> Telemetry:
    body = {
        "drone_id": "d1",
        "seq": seq,
        "ts": 1795428000000 + seq * 1000,
        "battery_pct": battery,
        **extra,
    }
    return parse_telemetry(orjson.dumps(body))


def types(t: Telemetry) -> list[tuple[str, str]]:
    return [(c.type, c.severity) for c in evaluate(t, TH)]


def test_low_battery_thresholds_are_strictly_below() -> None:
    assert types(reading(1, 25.0)) == []
    assert types(reading(1, 24.99)) == [("low_battery", "warning")]
    assert types(reading(1, 10.0)) == [("low_battery", "warning")]
    assert types(reading(1, 9.99)) == [("low_battery", "critical")]


def test_emergency_by_flag_or_status_is_critical() -> None:
    assert types(reading(1, 80, emergency=True)) == [("emergency", "critical")]
    assert types(reading(1, 80, status="emergency")) == [("emergency", "critical")]
    assert ("emergency", "critical") in types(reading(1, 5, emergency=True))


def test_fold_opens_one_alert_and_counts_repeats() -> None:
    conds = [c for s in (1, 2, 3) for c in evaluate(reading(s, 20), TH)]
    [ch] = fold(conds, {})
    assert ch.opened and not ch.escalated and ch.count == 3 and ch.severity == "warning"
    assert ch.alert_id == "d1:low_battery:1795428001000"
    assert ch.first_ts < ch.last_ts


def test_fold_escalates_an_open_alert_and_never_deescalates() -> None:
    current = {("d1", "low_battery"): OpenAlert("a1", "warning")}
    [ch] = fold(evaluate(reading(5, 5), TH), current)
    assert ch.alert_id == "a1" and ch.escalated and not ch.opened and ch.severity == "critical"
    current = {("d1", "low_battery"): OpenAlert("a1", "critical")}
    [ch] = fold(evaluate(reading(6, 20), TH), current)
    assert ch.severity == "critical" and not ch.escalated and not ch.notify


def test_fold_orders_by_event_time_so_out_of_order_batches_agree() -> None:
    a = evaluate(reading(1, 20), TH) + evaluate(reading(2, 5), TH)
    [forward] = fold(a, {})
    [backward] = fold(list(reversed(a)), {})
    assert forward.alert_id == backward.alert_id
    assert forward.severity == backward.severity == "critical"


def test_open_alert_state_round_trips() -> None:
    assert OpenAlert.decode(OpenAlert("d1:x:1|odd", "critical").encode()) == OpenAlert(
        "d1:x:1|odd", "critical"
    )
