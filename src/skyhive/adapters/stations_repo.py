"""Stations in MongoDB ``stations`` (GeoJSON point, 2dsphere index) and Redis ``stations:geo``."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import UpdateOne
from pymongo.database import Database

from skyhive.adapters.live_state import LiveState
from skyhive.adapters.mongo import Document
from skyhive.domain.stations import Station


def seed_stations(db: Database[Document], live: LiveState, stations: Sequence[Station]) -> int:
    """Load the stations idempotently (never overwriting an operator's edits); returns how
    many were new in MongoDB."""
    ops = []
    for s in stations:
        doc = s.to_document()
        ops.append(UpdateOne({"_id": doc.pop("_id")}, {"$setOnInsert": doc}, upsert=True))
    res = db.stations.bulk_write(ops, ordered=False)
    live.seed_stations(stations)
    return int(res.upserted_count)


def list_stations(db: Database[Document]) -> list[Document]:
    return list(db.stations.find().sort("_id", 1))


def station_from_document(doc: Document) -> Station:
    lon, lat = doc["location"]["coordinates"]
    return Station(
        code=str(doc["_id"]),
        name=str(doc.get("name", doc["_id"])),
        lat=float(lat),
        lon=float(lon),
        pads=int(doc.get("pads", 4)),
        chargers=int(doc.get("chargers", 2)),
    )


def get_station(db: Database[Document], code: str) -> Station | None:
    doc = db.stations.find_one({"_id": code})
    return station_from_document(doc) if doc else None


def all_stations(db: Database[Document]) -> list[Station]:
    return [station_from_document(d) for d in list_stations(db)]
