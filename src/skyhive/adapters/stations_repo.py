"""Stations in MongoDB ``stations`` (GeoJSON point; a 2dsphere index where the server has
geo queries: ``mongo_indexes``) and Redis ``stations:geo``."""

from __future__ import annotations

import time
from collections.abc import Sequence

from pymongo import UpdateOne
from pymongo.database import Database

from skyhive.adapters.live_state import LiveState
from skyhive.adapters.mongo import Document, collection
from skyhive.domain.stations import Station

RESOURCE = "stations"  # in the read cache


def seed_stations(db: Database[Document], live: LiveState, stations: Sequence[Station]) -> int:
    """Load the stations idempotently (never overwriting an operator's edits); returns how
    many were new in MongoDB."""
    ops = []
    for s in stations:
        doc = s.to_document()
        ops.append(UpdateOne({"_id": doc.pop("_id")}, {"$setOnInsert": doc}, upsert=True))
    res = collection(db, "stations").bulk_write(ops, ordered=False)
    live.seed_stations(stations)
    return int(res.upserted_count)


def list_stations(db: Database[Document]) -> list[Document]:
    return list(collection(db, "stations").find().sort("_id", 1))


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
    doc = collection(db, "stations").find_one({"_id": code})
    return station_from_document(doc) if doc else None


def all_stations(db: Database[Document]) -> list[Station]:
    return [station_from_document(d) for d in list_stations(db)]


class StationCache:
    """Stations by code, re-read from MongoDB at most every ``ttl_s``: every order and every
    dispatch looks one up, and stations change a few times a year."""

    def __init__(self, db: Database[Document], ttl_s: float = 60.0) -> None:
        self._db = db
        self._ttl_s = ttl_s
        self._loaded_at = -1e9
        self._by_code: dict[str, Station] = {}

    def all(self) -> dict[str, Station]:
        if time.monotonic() - self._loaded_at > self._ttl_s:
            self._by_code = {s.code: s for s in all_stations(self._db)}
            self._loaded_at = time.monotonic()
        return self._by_code

    def get(self, code: str) -> Station | None:
        station = self.all().get(code)
        if station is None and time.monotonic() - self._loaded_at > 1.0:
            self._loaded_at = -1e9  # an unknown code may be a station added since: re-read
            station = self.all().get(code)
        return station
