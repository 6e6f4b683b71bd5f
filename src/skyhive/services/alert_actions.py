"""What people do to alerts: acknowledge (who, a note) and resolve.

The stored alert changes first, conditionally on its state (acknowledging twice, or resolving
a resolved alert, is refused); then the active alert the processor folds against and the
drone's grounding, then the change is published like any other (the notifier stops
reminders, the dashboard updates).

A ``resolved_unacknowledged`` alert (critical, gone by itself, nobody looked) is cleared by
either: acknowledging it, or resolving it, makes it ``resolved`` and records the person as
``acknowledged_by`` (its ``resolved_by`` stays ``auto``: the condition went by itself). An
operator pressing "Resolve" on it means "seen, done", not a conflict.
"""

from __future__ import annotations

from typing import Any

from skyhive.domain.alert_lifecycle import ACTIVE_STATES, UNACKNOWLEDGED, ActiveAlert
from skyhive.domain.alerts import Alert
from skyhive.ports.active_alerts import ActiveAlerts
from skyhive.ports.alert_store import AlertStore
from skyhive.ports.clock import Clock
from skyhive.ports.fleet_state import FleetState
from skyhive.services.alerting import AlertEngine

_Step = tuple[tuple[str, ...], dict[str, Any]]


class AlertNotFound(KeyError):
    pass


class AlertStateConflict(Exception):
    def __init__(self, current: str, wanted: str) -> None:
        super().__init__(f"the alert is {current}; it cannot be {wanted}")
        self.current = current


class AlertActions:
    def __init__(
        self,
        *,
        store: AlertStore,
        active: ActiveAlerts,
        fleet: FleetState,
        engine: AlertEngine,
        clock: Clock,
    ) -> None:
        self._store = store
        self._active = active
        self._fleet = fleet
        self._engine = engine
        self._clock = clock

    def acknowledge(self, alert_id: str, by: str, note: str | None) -> Alert:
        """An open alert becomes ``acknowledged``, a ``resolved_unacknowledged`` one
        ``resolved``; who and when are recorded either way."""
        ack = {"acknowledged_by": by, "acknowledged_at": self._clock.now(), "ack_note": note}
        alert = self._change(
            alert_id,
            [(("open",), {"state": "acknowledged", **ack}), self._clear_unacknowledged(ack)],
            "acknowledged",
        )
        current = self._current(alert)
        if current is not None:
            updated = ActiveAlert(current.alert_id, current.severity, "acknowledged")
            self._active.put(alert.drone_id, alert.type, updated)
        return alert

    def resolve(self, alert_id: str, by: str, note: str | None) -> Alert:
        """An open or acknowledged alert becomes ``resolved`` by ``by``; a
        ``resolved_unacknowledged`` one is acknowledged by them (see the module)."""
        now = self._clock.now()
        fields = {"state": "resolved", "resolved_by": by, "resolved_at": now, "resolve_note": note}
        ack = {"acknowledged_by": by, "acknowledged_at": now, "ack_note": note}
        alert = self._change(
            alert_id, [(ACTIVE_STATES, fields), self._clear_unacknowledged(ack)], "resolved"
        )
        if self._current(alert) is not None:
            self._active.remove(alert.drone_id, alert.type)
        if alert.type == "offline" and alert.resolved_by == by:
            # Not watched until heard again: it must not be raised again at the next sweep.
            self._fleet.forget_heard(alert.drone_id)
        return alert

    @staticmethod
    def _clear_unacknowledged(ack: dict[str, Any]) -> _Step:
        return (UNACKNOWLEDGED,), {"state": "resolved", **ack}

    def _change(self, alert_id: str, steps: list[_Step], change: str) -> Alert:
        """The first of ``steps`` (from these states, set these fields) that applies; then
        the drone's grounding follows the alert and the change is published."""
        alert = None
        for from_states, fields in steps:
            alert = self._store.change_state(alert_id, from_states, fields)
            if alert is not None:
                break
        if alert is None:
            existing = self._store.get(alert_id)
            if existing is None:
                raise AlertNotFound(alert_id)
            raise AlertStateConflict(existing.state, change)
        self._engine.ground([alert])
        self._engine.publish_change(alert, change)
        return alert

    def _current(self, alert: Alert) -> ActiveAlert | None:
        """The active alert of this alert's drone and type, if it is this alert."""
        current = self._active.get(alert.drone_id, alert.type)
        return current if current is not None and current.alert_id == alert.id else None
