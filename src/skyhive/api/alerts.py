"""Alerts: list with filters, read one (with its notification attempts), acknowledge,
resolve. Who acknowledges or resolves is the caller's API key (its name), never a field of
the body. A critical alert that resolved by itself before anyone acknowledged it is
``resolved_unacknowledged`` until a person acknowledges (or resolves) it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from skyhive.adapters.alerts_repo import serialize
from skyhive.api.auth import current_principal
from skyhive.api.errors import error_response
from skyhive.api.fields import DroneId, Items, Open, PagedQuery, PathModel, Timestamp
from skyhive.api.operation import OPERATOR, VIEWER, operation
from skyhive.api.responses import current_clients, items_response, json_response
from skyhive.domain.alert_config import AlertType, Severity
from skyhive.domain.alerts import AlertState
from skyhive.services.alert_actions import AlertNotFound, AlertStateConflict

bp = APIBlueprint("alerts", __name__, url_prefix="/api/v1/alerts", abp_tags=[Tag(name="alerts")])

MAX_ALERT_ID = 200


class Alert(Open):
    """An alert: one condition of one drone, from its first finding until it is resolved."""

    id: str
    drone_id: str
    type: AlertType
    severity: Severity
    state: AlertState = Field(
        description="`open`, `acknowledged` (by a person), `resolved`, or "
        "`resolved_unacknowledged`: critical, resolved by itself (`resolved_by` `auto`) "
        "before anyone acknowledged it; it waits for a person's acknowledgement."
    )
    opened_at: datetime
    last_seen: datetime | None = Field(
        default=None, description="The last finding (absent before the first counted one)."
    )
    count: int | None = Field(default=None, ge=0, description="Findings that fired it.")
    details: dict[str, Any] | None = Field(
        default=None,
        description="What the last finding saw: position, battery, and per type e.g. the "
        "zones entered, the station out of reach, the implied speed.",
    )
    action: dict[str, Any] | None = Field(
        default=None,
        description="An automatic action taken (cannot_reach_station: the drone was ordered "
        "to `station`).",
    )
    grounding: bool | None = Field(
        default=None,
        description="It was critical and of a grounding type (`SKYHIVE_ALERTS__GROUNDING_TYPES`)"
        ": its drone is out of dispatch until a person resolves it (or acknowledges it once "
        "`resolved_unacknowledged`).",
    )
    acknowledged_by: str | None = Field(
        default=None, description="The name of the API key that acknowledged it."
    )
    acknowledged_at: datetime | None = None
    ack_note: str | None = None
    resolved_by: str | None = Field(
        default=None, description="`auto`, or the name of the API key that resolved it."
    )
    resolved_at: datetime | None = None
    resolve_note: str | None = None


class AlertWithNotifications(Alert):
    notifications: list[dict[str, Any]] = Field(
        description="Every notification attempt made for it, oldest first."
    )


class AlertsQuery(PagedQuery):
    state: AlertState | None = Field(
        default=None, description="Only alerts in this state (default: all states)."
    )
    drone_id: DroneId | None = Field(default=None, description="Only this drone's alerts.")
    severity: Severity | None = None
    type: AlertType | None = None
    since: Timestamp | None = Field(
        default=None, description="Only alerts seen at or after this time."
    )


class AlertPath(PathModel):
    alert_id: str = Field(max_length=MAX_ALERT_ID)


class AlertAction(BaseModel):
    """Why the caller acts on the alert (who acts is the caller's API key)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str | None = Field(default=None, max_length=2000)


@bp.errorhandler(AlertNotFound)
def _not_found(exc: AlertNotFound) -> Response:
    return error_response(404, f"alert {str(exc.args[0])[:120]!r} not found", "alert_id")


@bp.errorhandler(AlertStateConflict)
def _conflict(exc: AlertStateConflict) -> Response:
    return error_response(409, str(exc))


@operation(bp.get, "", access=VIEWER, ok=Items[Alert])
def list_alerts(query: AlertsQuery) -> Response:
    """Newest opened first (then by id); `before` pages on. Without `state` every alert is
    listed, whatever its state; `since` keeps the alerts seen at or after that time."""
    alerts = current_clients().alerts.list(
        state=query.state,
        drone_id=query.drone_id,
        limit=query.limit,
        severity=query.severity,
        alert_type=query.type,
        since=query.since,
        before=query.before,
    )
    return items_response([a.to_json() for a in alerts])


@operation(bp.get, "/<alert_id>", access=VIEWER, ok=AlertWithNotifications, errors=(404,))
def get_alert(path: AlertPath) -> Response:
    """One alert, with every notification attempt made for it."""
    clients = current_clients()
    alert = clients.alerts.get(path.alert_id)
    if alert is None:
        raise AlertNotFound(path.alert_id)
    out = alert.to_json()
    out["notifications"] = [serialize(n) for n in clients.notifications.for_alert(path.alert_id)]
    return json_response(out)


@operation(bp.post, "/<alert_id>/ack", access=OPERATOR, ok=Alert, errors=(404, 409))
def ack_alert(path: AlertPath, body: AlertAction) -> Response:
    """Acknowledge an open alert (stops its reminders), as the caller's API key; a
    `resolved_unacknowledged` one becomes `resolved`, its acknowledgement recorded. 409 when
    it is acknowledged or resolved already."""
    alert = current_clients().alert_actions.acknowledge(
        path.alert_id, current_principal().name, body.note
    )
    return json_response(alert.to_json())


@operation(bp.post, "/<alert_id>/resolve", access=OPERATOR, ok=Alert, errors=(404, 409))
def resolve_alert(path: AlertPath, body: AlertAction) -> Response:
    """Resolve an open or acknowledged alert, as the caller's API key; a
    `resolved_unacknowledged` one is acknowledged by it (it becomes `resolved`, the caller
    recorded as `acknowledged_by`). 409 when it is resolved already. If the condition
    persists, the next finding opens a new alert."""
    alert = current_clients().alert_actions.resolve(
        path.alert_id, current_principal().name, body.note
    )
    return json_response(alert.to_json())
