"""Stations (MongoDB): where drones take off, land and charge."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from skyhive.adapters.mongo import Document
from skyhive.adapters.stations_repo import RESOURCE, list_stations
from skyhive.api.cached import cached_list
from skyhive.api.responses import current_clients

bp = Blueprint("stations", __name__, url_prefix="/api/v1/stations")


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


@bp.get("")
def get_stations() -> Response:
    def view() -> dict[str, Any]:
        items = [station_view(d) for d in list_stations(current_clients().db)]
        return {"items": items, "count": len(items)}

    return cached_list(RESOURCE, view)
