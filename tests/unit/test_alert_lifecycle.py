"""The alert lifecycle: open, repeat, escalate, de-escalate, resolve, reopen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from skyhive.domain.alert_config import AlertConfig
from skyhive.domain.alert_lifecycle import ActiveAlert, alert_id_for, fold
from skyhive.domain.alert_rules import Finding

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CFG = AlertConfig()


def f(kind: str, severity: str | None, s: int) -> tuple[str, Finding]:
    return ("d1", Finding(kind, severity, T0 + timedelta(seconds=s)))  # type: ignore[arg-type]


def test_first_finding_opens_and_repeats_count() -> None:
    updates, state = fold(
        [f("low_battery", "warning", i) for i in range(3)], {}, CFG.resolves_itself
    )
    [u] = updates
    assert u.opened and u.events == ["opened"] and u.count == 3 and u.severity == "warning"
    assert u.alert_id == alert_id_for("d1", "low_battery", T0)
    assert u.last_ts - u.first_ts == timedelta(seconds=2)
    assert state[("d1", "low_battery")] == ActiveAlert(u.alert_id, "warning", "open")


def test_escalates_and_deescalates_an_active_alert_keeping_its_state() -> None:
    active = {("d1", "low_battery"): ActiveAlert("a1", "warning", "acknowledged")}
    updates, state = fold(
        [f("low_battery", "critical", 1), f("low_battery", "warning", 2)],
        active,
        CFG.resolves_itself,
    )
    [u] = updates
    assert u.alert_id == "a1" and not u.opened
    assert u.events == ["escalated", "deescalated"] and u.severity == "warning"
    assert state[("d1", "low_battery")] == ActiveAlert("a1", "warning", "acknowledged")


def test_clear_resolves_when_the_type_resolves_itself_and_the_next_finding_reopens() -> None:
    active = {("d1", "geofence"): ActiveAlert("g1", "critical")}
    updates, state = fold(
        [f("geofence", None, 1), f("geofence", "critical", 2)], active, CFG.resolves_itself
    )
    by_id = {u.alert_id: u for u in updates}
    assert by_id["g1"].events == ["resolved"] and by_id["g1"].resolved_at == T0 + timedelta(
        seconds=1
    )
    reopened = by_id[alert_id_for("d1", "geofence", T0 + timedelta(seconds=2))]
    assert reopened.opened and state[("d1", "geofence")] == ActiveAlert(
        reopened.alert_id, "critical"
    )


def test_types_that_need_a_human_stay_open_when_readings_are_normal() -> None:
    active = {("d1", "gps_jump"): ActiveAlert("j1", "critical")}
    updates, state = fold([f("gps_jump", None, 1)], active, CFG.resolves_itself)
    assert updates == [] and state == {}


def test_a_clear_with_nothing_active_changes_nothing() -> None:
    assert fold([f("emergency", None, 1)], {}, CFG.resolves_itself) == ([], {})


def test_active_alert_encoding_reads_the_old_two_part_form() -> None:
    assert ActiveAlert.decode("d1:x:1|critical") == ActiveAlert("d1:x:1", "critical", "open")
    a = ActiveAlert("d1:geofence:5", "warning", "acknowledged")
    assert ActiveAlert.decode(a.encode()) == a


def test_findings_older_than_the_reading_that_opened_the_alert_change_nothing() -> None:
    """Two lanes judge one drone: the urgent lane opened the emergency at +10 s; the routine
    lane then folds readings of +1 .. +9 s it judged with the memory it read before."""
    opened = alert_id_for("d1", "emergency", T0 + timedelta(seconds=10))
    low = alert_id_for("d1", "low_battery", T0 + timedelta(seconds=10))
    active = {
        ("d1", "emergency"): ActiveAlert(opened, "critical"),
        ("d1", "low_battery"): ActiveAlert(low, "critical"),
    }
    late = [f("emergency", None, s) for s in range(1, 10)]
    late += [f("low_battery", "warning", s) for s in range(1, 10)]
    assert fold(late, active, CFG.resolves_itself) == ([], {})
    # The reading that opened it, and newer ones, still count and resolve.
    updates, state = fold(
        [f("emergency", "critical", 10), f("emergency", None, 11)], active, CFG.resolves_itself
    )
    [u] = updates
    assert u.alert_id == opened and u.count == 1 and u.events == ["resolved"]
    assert state == {("d1", "emergency"): None}


def test_offline_opened_by_the_server_clock_is_resolved_by_any_reading() -> None:
    """The offline timer opens by the server's clock; a drone whose clock is behind is still
    heard again."""
    active = {
        ("d1", "offline"): ActiveAlert(
            alert_id_for("d1", "offline", T0 + timedelta(hours=1)), "critical"
        )
    }
    updates, state = fold([f("offline", None, 5)], active, CFG.resolves_itself)
    assert [u.events for u in updates] == [["resolved"]]
    assert state == {("d1", "offline"): None}
