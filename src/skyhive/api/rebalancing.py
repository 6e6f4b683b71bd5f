"""The dispatcher's rebalancing moves (MongoDB ``rebalance_moves``): which idle drone was sent
to which station, when, and why (``services/rebalancer.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from skyhive.api.fields import Items, QueryModel
from skyhive.api.operation import VIEWER, operation
from skyhive.api.responses import current_clients, items_response

bp = APIBlueprint(
    "rebalancing", __name__, url_prefix="/api/v1/rebalancing", abp_tags=[Tag(name="forecasts")]
)


class MovesQuery(QueryModel):
    hours: int = Field(default=24, ge=1, le=24 * 90, description="Moves of the last N hours.")
    limit: int = Field(default=200, ge=1, le=1000)


class MoveView(BaseModel):
    at: datetime
    drone_id: str
    from_station: str
    to_station: str
    km: float = Field(ge=0)
    reason: str = Field(description="The forecast and the drones docked that made the move.")


@operation(bp.get, "/moves", access=VIEWER, ok=Items[MoveView])
def list_moves(query: MovesQuery) -> Response:
    """Newest first."""
    c = current_clients()
    since = c.clock.now() - timedelta(hours=query.hours)
    moves = c.rebalance_moves.since(since, query.limit)
    return items_response([{k: v for k, v in m.items() if k != "_id"} for m in moves])
