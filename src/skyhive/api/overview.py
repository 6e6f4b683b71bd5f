"""The operations overview (``services/overview.py``): fleet, today's deliveries, open alerts
and this month's revenue in one small response, for the dashboard."""

from __future__ import annotations

from flask import Blueprint, Response

from skyhive.api.responses import current_clients, json_response
from skyhive.services.overview import overview

bp = Blueprint("overview", __name__, url_prefix="/api/v1/overview")


@bp.get("")
def get_overview() -> Response:
    return json_response(overview(current_clients()))
