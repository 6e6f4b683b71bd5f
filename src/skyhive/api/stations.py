"""Stations (MongoDB): where drones take off, land and charge."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from skyhive.adapters.mongo import Document
from skyhive.adapters.stations_repo import RESOURCE
from skyhive.adapters.stations_repo import list_stations as stored_stations
from skyhive.api.cached import cached_list
from skyhive.api.fields import Items
from skyhive.api.operation import VIEWER, operation
from skyhive.api.responses import current_clients

bp = APIBlueprint(
    "stations", __name__, url_prefix="/api/v1/stations", abp_tags=[Tag(name="stations")]
)


class Station(BaseModel):
    """A station, its GeoJSON point flattened into `lat`/`lon`."""

    code: str
    name: str | None
    lat: float | None = Field(ge=-90, le=90)
    lon: float | None = Field(ge=-180, le=180)
    pads: int | None = Field(ge=0, description="Landing pads.")
    chargers: int | None = Field(ge=0)


def station_view(doc: Document) -> dict[str, Any]:
    """Flatten the GeoJSON point (``[lon, lat]``, easy to get backwards) into lat/lon."""
    coords = (doc.get("location") or {}).get("coordinates") or [None, None]
    return {
        "code": str(doc["_id"]),
        "name": doc.get("name"),
        "lat": coords[1],
        "lon": coords[0],
        "pads": doc.get("pads"),
        "chargers": doc.get("chargers"),
    }


@operation(bp.get, "", access=VIEWER, ok=Items[Station])
def list_stations() -> Response:
    """Every station the fleet flies from, by code (`X-Cache` says whether the read cache
    answered)."""

    def view() -> dict[str, Any]:
        items = [station_view(d) for d in stored_stations(current_clients().db)]
        return {"items": items, "count": len(items)}

    return cached_list(RESOURCE, view)
