"""What people do to alerts: acknowledge (who, a note) and resolve.

The stored alert changes first, conditionally on its state (acknowledging twice, or resolving
a resolved alert, is refused); then the active alert the processor folds against, then the
change is published like any other (the notifier stops reminders, the dashboard updates).
"""

from __future__ import annotations

from typing import Any

from skyhive.domain.alert_lifecycle import ACTIVE_STATES, ActiveAlert
from skyhive.domain.alerts import Alert
from skyhive.ports.active_alerts import ActiveAlerts
from skyhive.ports.alert_store import AlertStore
from skyhive.ports.clock import Clock
from skyhive.ports.fleet_state import FleetState
from skyhive.services.alerting import AlertEngine


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
        fields = {
            "state": "acknowledged",
            "acknowledged_by": by,
            "acknowledged_at": self._clock.now(),
            "ack_note": note,
        }
        alert = self._change(alert_id, ("open",), fields, "acknowledged")
        current = self._current(alert)
        if current is not None:
            updated = ActiveAlert(current.alert_id, current.severity, "acknowledged")
            self._active.put(alert.drone_id, alert.type, updated)
        return alert

    def resolve(self, alert_id: str, by: str, note: str | None) -> Alert:
        fields = {
            "state": "resolved",
            "resolved_by": by,
            "resolved_at": self._clock.now(),
            "resolve_note": note,
        }
        alert = self._change(alert_id, ACTIVE_STATES, fields, "resolved")
        if self._current(alert) is not None:
            self._active.remove(alert.drone_id, alert.type)
        if alert.type == "offline":
            # Not watched until heard again: it must not be raised again at the next sweep.
            self._fleet.forget_heard(alert.drone_id)
        return alert

    def _change(
        self, alert_id: str, from_states: tuple[str, ...], fields: dict[str, Any], change: str
    ) -> Alert:
        alert = self._store.change_state(alert_id, from_states, fields)
        if alert is None:
            existing = self._store.get(alert_id)
            if existing is None:
                raise AlertNotFound(alert_id)
            raise AlertStateConflict(existing.state, change)
        self._engine.publish_change(alert, change)
        return alert

    def _current(self, alert: Alert) -> ActiveAlert | None:
        """The active alert of this alert's drone and type, if it is this alert."""
        current = self._active.get(alert.drone_id, alert.type)
        return current if current is not None and current.alert_id == alert.id else None
