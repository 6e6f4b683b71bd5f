"""Station rollups in MongoDB ``station_hours``: one document per station and hour, ``_id``
``<station>:<YYYY-MM-DDTHH>Z``, its figures written whole by ``$set`` (never ``$inc``), so a
recomputation replaces them. ``station_id`` and ``hour`` are set on insert only: they never
change for an ``_id``, and the embedded server would keep a date written by ``$set`` as text.
An hour without a document had nothing happen."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime

from pymongo import ASCENDING, UpdateOne
from pymongo.database import Database

from skyhive.adapters.mongo import Document, collection
from skyhive.domain.station_rollups import StationHour

COLLECTION = "station_hours"
WRITE_BATCH = 500  # documents per request: the embedded server serves one request at a time
FIGURES = tuple(f.name for f in fields(StationHour) if f.name not in ("station_id", "hour"))


def _in(since: datetime, until: datetime) -> dict[str, object]:
    return {"$gte": since, "$lt": until}


class StationHoursRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._c = collection(db, COLLECTION)

    def replace(self, since: datetime, until: datetime, hours: Sequence[StationHour]) -> int:
        keys = {h.key for h in hours}
        stale = [d["_id"] for d in self._c.find({"hour": _in(since, until)}, {"_id": 1})]
        ops = [
            UpdateOne(
                {"_id": h.key},
                {"$setOnInsert": {"station_id": h.station_id, "hour": h.hour}, "$set": h.figures()},
                upsert=True,
            )
            for h in hours
        ]
        for i in range(0, len(ops), WRITE_BATCH):
            self._c.bulk_write(ops[i : i + WRITE_BATCH], ordered=False)
        gone = sorted(k for k in stale if k not in keys)
        if gone:
            self._c.delete_many({"_id": {"$in": gone}})
        return len(ops)

    def orders(self, since: datetime, until: datetime) -> dict[str, dict[datetime, float]]:
        out: defaultdict[str, dict[datetime, float]] = defaultdict(dict)
        projection = {"station_id": 1, "hour": 1, "orders": 1}
        for d in self._c.find({"hour": _in(since, until)}, projection):
            out[str(d["station_id"])][d["hour"]] = float(d.get("orders", 0))
        return dict(out)

    def first_hours(self, station_ids: Iterable[str]) -> dict[str, datetime]:
        out = {}
        for station_id in station_ids:
            first = self._c.find_one(
                {"station_id": station_id}, {"hour": 1}, sort=[("hour", ASCENDING)]
            )
            if first is not None:
                out[station_id] = first["hour"]
        return out

    def of_station(self, station_id: str, since: datetime, until: datetime) -> list[StationHour]:
        """A station's recorded hours in ``[since, until)``, oldest first."""
        query = {"station_id": station_id, "hour": _in(since, until)}
        return [
            StationHour(station_id, d["hour"], **{name: d[name] for name in FIGURES if name in d})
            for d in self._c.find(query).sort("hour", ASCENDING)
        ]
