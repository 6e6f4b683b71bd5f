"""Dead letters (Redis stream): rejected messages with their reason, newest first."""

from __future__ import annotations

from flask import Blueprint, Response

from skyhive.api.params import limit_param, stream_id_param
from skyhive.api.responses import current_clients, items_response

bp = Blueprint("deadletters", __name__, url_prefix="/api/v1/deadletters")


@bp.get("")
def list_deadletters() -> Response:
    """Page back with ``before=<next_before>``; ``next_before`` is null on the last page."""
    limit = limit_param()
    before = stream_id_param("before")
    dead = current_clients().deadletters
    items = dead.list(limit=limit, before=before)
    next_before = items[-1]["id"] if len(items) == limit else None
    return items_response(items, total=dead.count(), next_before=next_before)
