"""Alerts (MongoDB): filter by state and drone, newest first."""

from __future__ import annotations

from flask import Blueprint, Response

from skyhive.adapters.alerts_repo import serialize
from skyhive.api.params import choice_param, drone_id_param, limit_param
from skyhive.api.responses import current_clients, items_response

bp = Blueprint("alerts", __name__, url_prefix="/api/v1/alerts")

ALERT_STATES = ("open", "acknowledged", "resolved")


@bp.get("")
def list_alerts() -> Response:
    """Without ``state`` every alert is listed, whatever its state."""
    state = choice_param("state", ALERT_STATES)
    drone_id = drone_id_param()
    limit = limit_param()
    docs = current_clients().alerts.list(state=state, drone_id=drone_id, limit=limit)
    return items_response([serialize(d) for d in docs])
