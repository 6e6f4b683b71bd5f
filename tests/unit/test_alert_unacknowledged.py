"""``resolved_unacknowledged`` and grounding, as pure decisions: which state an alert that
resolves by itself goes to, what the alert engine and a person's actions do to it and to the
drone's grounding (with the in-memory ports; the real servers are
``tests/integration/test_alert_grounding.py``)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from memory_ports import (
    Announced,
    MemoryActiveAlerts,
    MemoryAlertStore,
    MemoryBus,
    MemoryFleetState,
    MemoryGrounding,
    Stations,
)
from pydantic import ValidationError

from manual_clock import ManualClock
from skyhive.domain.alert_config import AlertConfig, Severity
from skyhive.domain.alert_lifecycle import UNACKNOWLEDGED, ActiveAlert, fold, resolved_state
from skyhive.domain.alert_rules import Finding
from skyhive.domain.alerts import Alert, opened_alert
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.stations import bart_stations
from skyhive.domain.telemetry import Telemetry
from skyhive.services.alert_actions import AlertActions, AlertStateConflict
from skyhive.services.alerting import AlertEngine
from skyhive.settings import Settings
from skyhive.simulator.history_alerts import OPERATOR, DroneAlerts, NearestStations

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def always(_: str) -> bool:
    return True


def test_resolved_state_waits_for_a_person_only_when_critical_and_unacknowledged() -> None:
    assert resolved_state("critical", "open") == UNACKNOWLEDGED
    assert resolved_state("critical", "acknowledged") == "resolved"
    assert resolved_state("warning", "open") == "resolved"


@pytest.mark.parametrize(
    ("severities", "state", "expected"),
    [
        (["critical"], "open", UNACKNOWLEDGED),
        (["critical"], "acknowledged", "resolved"),
        (["warning"], "open", "resolved"),
        (["warning", "critical"], "open", UNACKNOWLEDGED),  # escalated, then cleared
        (["critical", "warning"], "open", "resolved"),  # de-escalated, then cleared
    ],
)
def test_fold_resolves_by_the_severity_when_it_clears_and_the_active_state(
    severities: list[Severity], state: str, expected: str
) -> None:
    key = ("d1", "low_battery")
    active = {key: ActiveAlert("d1:low_battery:1000", "warning", state)}
    findings = [("d1", Finding("low_battery", s, at(i + 1))) for i, s in enumerate(severities)]
    findings.append(("d1", Finding("low_battery", None, at(10))))
    [u], new = fold(findings, active, always)
    assert u.resolved_at == at(10) and u.resolved_state == expected
    assert new == {key: None}  # not an active state: nothing is remembered of it


def test_an_alert_opened_and_cleared_in_one_batch_is_stored_unacknowledged() -> None:
    findings = [
        ("d1", Finding("emergency", "critical", at(1))),
        ("d1", Finding("emergency", None, at(2))),
    ]
    [u], _ = fold(findings, {}, always)
    alert = opened_alert(u)
    assert alert.state == UNACKNOWLEDGED and alert.resolved_by == "auto"
    assert alert.resolved_at == at(2)


def test_a_new_finding_after_an_unacknowledged_resolution_opens_a_new_alert() -> None:
    first = [
        ("d1", Finding("emergency", "critical", at(1))),
        ("d1", Finding("emergency", None, at(2))),
    ]
    [u1], state = fold(first, {}, always)
    active = {k: v for k, v in state.items() if v is not None}
    [u2], _ = fold([("d1", Finding("emergency", "critical", at(3)))], active, always)
    assert u2.opened and u2.alert_id != u1.alert_id


def test_grounding_types_default_and_are_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    config = AlertConfig()
    assert {
        t for t in ("battery_drop", "gps_jump", "gps_degraded") if config.grounds(t, "critical")
    } == {
        "battery_drop",
        "gps_jump",
        "gps_degraded",
    }
    assert not config.grounds("battery_drop", "warning")
    assert not config.grounds("low_battery", "critical")
    monkeypatch.setenv("SKYHIVE_ALERTS__GROUNDING_TYPES", '["low_battery"]')
    mine = Settings()
    assert mine.alerts.grounds("low_battery", "critical")
    assert not mine.alerts.grounds("gps_jump", "critical")
    with pytest.raises(ValidationError):
        AlertConfig(grounding_types=frozenset({"no_such_type"}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "grounds"),
    [("open", True), ("acknowledged", True), (UNACKNOWLEDGED, True), ("resolved", False)],
)
def test_an_alert_grounds_until_it_is_resolved(state: str, grounds: bool) -> None:
    doc = {"id": "a", "drone_id": "d", "type": "gps_jump", "severity": "warning", "opened_at": T0}
    assert Alert.model_validate({**doc, "state": state, "grounding": True}).grounds is grounds
    assert not Alert.model_validate({**doc, "state": state}).grounds


class World:
    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        self.store = MemoryAlertStore()
        self.active = MemoryActiveAlerts()
        self.grounding = MemoryGrounding()
        self.engine = AlertEngine(
            Settings(), active=self.active, store=self.store, feed=Announced(), bus=MemoryBus(),
            stations=Stations(), grounding=self.grounding, clock=self.clock,
        )  # fmt: skip
        self.actions = AlertActions(
            store=self.store, active=self.active, fleet=MemoryFleetState(self.active),
            engine=self.engine, clock=self.clock,
        )  # fmt: skip

    def find(self, kind: str, severity: str | None, s: float) -> None:
        self.engine.apply([("d1", Finding(kind, severity, at(s)))])  # type: ignore[arg-type]


def test_a_grounding_alert_grounds_until_a_person_acknowledges_its_resolution() -> None:
    w = World()
    w.find("gps_degraded", "critical", 1)
    [alert] = w.store.list(drone_id="d1")
    assert alert.grounding and w.grounding.all() == {"d1": [alert.id]}
    w.find("gps_degraded", None, 2)  # gone by itself: nobody looked
    assert w.store.get(alert.id).state == UNACKNOWLEDGED  # type: ignore[union-attr]
    assert w.grounding.all() == {"d1": [alert.id]}
    w.clock.advance(60)
    acked = w.actions.acknowledge(alert.id, "ann", "checked the antenna")
    assert acked.state == "resolved" and acked.resolved_by == "auto"
    assert (acked.acknowledged_by, acked.acknowledged_at, acked.ack_note) == (
        "ann",
        at(60),
        "checked the antenna",
    )
    assert w.grounding.all() == {}
    with pytest.raises(AlertStateConflict):
        w.actions.acknowledge(alert.id, "bob", None)


def test_resolving_an_unacknowledged_alert_acknowledges_it() -> None:
    w = World()
    w.find("emergency", "critical", 1)
    w.find("emergency", None, 2)
    [alert] = w.store.list(drone_id="d1")
    done = w.actions.resolve(alert.id, "bob", "saw it")
    assert done.state == "resolved" and done.resolved_by == "auto"
    assert done.acknowledged_by == "bob" and done.ack_note == "saw it"


def test_a_warning_or_a_person_resolving_it_ungrounds_and_warnings_never_ground() -> None:
    w = World()
    w.find("battery_drop", "warning", 1)
    assert w.grounding.all() == {}
    w.find("battery_drop", "critical", 2)  # escalated: grounds
    [alert] = w.store.list(drone_id="d1")
    assert w.grounding.all() == {"d1": [alert.id]}
    w.find("battery_drop", "warning", 3)  # de-escalated: still grounded, a person clears it
    assert w.grounding.all() == {"d1": [alert.id]}
    w.actions.resolve(alert.id, "ann", None)
    assert w.grounding.all() == {}


def test_grounding_is_rebuilt_from_the_store() -> None:
    w = World()
    w.find("gps_jump", "critical", 1)
    [alert] = w.store.list(drone_id="d1")
    w.grounding.grounded = {"ghost": ["ghost:gps_jump:1"]}  # lost the real one, kept a stale one
    assert w.engine.rebuild_grounding() == 1
    assert w.grounding.all() == {"d1": [alert.id]}


def test_simulated_history_has_an_operator_acknowledge_an_unacknowledged_alert() -> None:
    spec = DroneSpec(drone_id="d1", home_station="EMBR")
    alerts = DroneAlerts(spec, AlertConfig(), NearestStations(bart_stations()), random.Random(1))

    def reading(s: int, status: str) -> Telemetry:
        ms = int(T0.timestamp() + s) * 1000
        return Telemetry.model_validate(
            {"drone_id": "d1", "seq": ms, "ts": ms, "battery_pct": 80.0, "lat": 37.7,
             "lon": -122.4, "alt_m": 90.0, "speed_mps": 15.0, "status": status}
        )  # fmt: skip

    alerts.observe(reading(0, "emergency"))
    alerts.observe(reading(5, "in_flight"))  # gone by itself: waits for the operator
    assert alerts.take() == []
    before = alerts.saved()
    [waiting], active = alerts.close(at(10))  # as it stands if history ended now
    assert waiting.state == UNACKNOWLEDGED and active == []
    alerts.restore(before)
    alerts.observe(reading(3600, "idle"))
    [done] = alerts.take()
    assert done.type == "emergency" and done.state == "resolved" and done.resolved_by == "auto"
    assert done.acknowledged_by == OPERATOR
    assert done.resolved_at < done.acknowledged_at <= at(3600)  # type: ignore[operator]
