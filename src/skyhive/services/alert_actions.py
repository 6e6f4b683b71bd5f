"""What people do to alerts: acknowledge (who, a note) and resolve.

The MongoDB record changes first, conditionally on its state (acknowledging twice, or
resolving a resolved alert, is refused); then the Redis mirror the processor folds against,
then the change is published like any other (the notifier stops reminders, the dashboard
updates).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from skyhive.adapters.alerts_repo import alert_state_key
from skyhive.domain.alert_lifecycle import ACTIVE_STATES, ActiveAlert
from skyhive.services.alerting import AlertEngine
from skyhive.services.offline_watch import stop_watching
from skyhive.wiring import Clients


class AlertNotFound(KeyError):
    pass


class AlertStateConflict(Exception):
    def __init__(self, current: str, wanted: str) -> None:
        super().__init__(f"the alert is {current}; it cannot be {wanted}")
        self.current = current


class AlertActions:
    def __init__(self, clients: Clients) -> None:
        self._c = clients
        self._engine = AlertEngine(clients.settings, clients)

    def acknowledge(self, alert_id: str, by: str, note: str | None) -> dict[str, Any]:
        fields = {
            "state": "acknowledged",
            "acknowledged_by": by,
            "acknowledged_at": datetime.now(UTC),
            "ack_note": note,
        }
        doc = self._change(alert_id, ("open",), fields, "acknowledged")
        current = self._active(doc)
        if current is not None:
            updated = ActiveAlert(current.alert_id, current.severity, "acknowledged")
            self._c.redis_text.hset(alert_state_key(doc["drone_id"]), doc["type"], updated.encode())
        return doc

    def resolve(self, alert_id: str, by: str, note: str | None) -> dict[str, Any]:
        fields = {
            "state": "resolved",
            "resolved_by": by,
            "resolved_at": datetime.now(UTC),
            "resolve_note": note,
        }
        doc = self._change(alert_id, ACTIVE_STATES, fields, "resolved")
        if self._active(doc) is not None:
            self._c.redis_text.hdel(alert_state_key(doc["drone_id"]), doc["type"])
        if doc["type"] == "offline":
            stop_watching(self._c.redis_text, str(doc["drone_id"]))
        return doc

    def _change(
        self, alert_id: str, from_states: tuple[str, ...], fields: dict[str, Any], change: str
    ) -> dict[str, Any]:
        doc = self._c.alerts.change_state(alert_id, from_states, fields)
        if doc is None:
            existing = self._c.alerts.get(alert_id)
            if existing is None:
                raise AlertNotFound(alert_id)
            raise AlertStateConflict(str(existing.get("state")), change)
        self._engine.publish_change(doc, change)
        return doc

    def _active(self, doc: dict[str, Any]) -> ActiveAlert | None:
        """The Redis mirror's entry for this alert's drone and type, if it is this alert."""
        raw = self._c.redis_text.hget(alert_state_key(doc["drone_id"]), doc["type"])
        current = ActiveAlert.decode(str(raw)) if raw else None
        return current if current is not None and current.alert_id == doc["_id"] else None
