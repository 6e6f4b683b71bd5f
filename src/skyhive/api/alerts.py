"""Alerts: list with filters, read one (with its notification attempts), acknowledge,
resolve."""

from __future__ import annotations

from typing import get_args

from flask import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from skyhive.adapters.alerts_repo import serialize
from skyhive.api.errors import error_response
from skyhive.api.params import (
    choice_param,
    drone_id_param,
    json_body,
    limit_param,
    timestamp_param,
)
from skyhive.api.responses import current_clients, items_response, json_response
from skyhive.domain.alert_config import ALERT_TYPES, Severity
from skyhive.services.alert_actions import AlertActions, AlertNotFound, AlertStateConflict

bp = Blueprint("alerts", __name__, url_prefix="/api/v1/alerts")

ALERT_STATES = ("open", "acknowledged", "resolved")
SEVERITIES: tuple[str, ...] = get_args(Severity)


class AlertAction(BaseModel):
    """Who acts on the alert, and why."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    by: str = Field(min_length=1, max_length=100)
    note: str | None = Field(default=None, max_length=2000)


@bp.errorhandler(AlertNotFound)
def _not_found(exc: AlertNotFound) -> Response:
    return error_response(404, f"alert {str(exc.args[0])[:120]!r} not found", "alert_id")


@bp.errorhandler(AlertStateConflict)
def _conflict(exc: AlertStateConflict) -> Response:
    return error_response(409, str(exc))


@bp.get("")
def list_alerts() -> Response:
    """Newest first. Without ``state`` every alert is listed, whatever its state; ``since``
    keeps the alerts seen at or after that time."""
    docs = current_clients().alerts.list(
        state=choice_param("state", ALERT_STATES),
        drone_id=drone_id_param(),
        limit=limit_param(),
        severity=choice_param("severity", SEVERITIES),
        alert_type=choice_param("type", ALERT_TYPES),
        since=timestamp_param("since"),
    )
    return items_response([serialize(d) for d in docs])


@bp.get("/<alert_id>")
def get_alert(alert_id: str) -> Response:
    clients = current_clients()
    doc = clients.alerts.get(alert_id)
    if doc is None:
        raise AlertNotFound(alert_id)
    out = serialize(doc)
    out["notifications"] = [serialize(n) for n in clients.notifications.for_alert(alert_id)]
    return json_response(out)


@bp.post("/<alert_id>/ack")
def acknowledge(alert_id: str) -> Response:
    body = json_body(AlertAction)
    doc = AlertActions(current_clients()).acknowledge(alert_id, body.by, body.note)
    return json_response(serialize(doc))


@bp.post("/<alert_id>/resolve")
def resolve(alert_id: str) -> Response:
    body = json_body(AlertAction)
    doc = AlertActions(current_clients()).resolve(alert_id, body.by, body.note)
    return json_response(serialize(doc))
