"""How far behind the processing is: each consumer group's lag on the bus, and whether
ingest is held back. What `/readyz` reports in its `lag` section, as an operation of its own
for the dashboard (always 200, so a degraded stack is not a failed request on the page)."""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from skyhive.api.health import BusLag, read_lag_section
from skyhive.api.operation import VIEWER, operation
from skyhive.api.responses import current_clients, json_response

bp = APIBlueprint("bus", __name__, url_prefix="/api/v1/bus", abp_tags=[Tag(name="meta")])


class BusStatus(BaseModel):
    lag: BusLag | None = Field(
        description="Null while the bus has no consumer group or could not be read in time."
    )


@operation(bp.get, "", access=VIEWER, ok=BusStatus)
def bus_status() -> Response:
    """Each consumer group's backlog and lag, and whether ingest is held back."""
    return json_response({"lag": read_lag_section(current_clients())})
