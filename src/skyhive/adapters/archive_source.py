"""What a day's archive export reads from MongoDB (the ``ArchiveSource`` port): the day's
readings across the fleet, its deliveries and alerts, the registry and the stations.

Readings are read drone by drone (the ids ``distinct`` finds among the day's documents, by
the ``expire_start`` index), each drone's day by ``drone_start`` (``drone_ts`` in a native
time-series collection), as ``TelemetryRepo`` reads a window; buckets are unfolded
(``domain/history``) and each (drone, seq) kept once, so a day of the whole fleet never sits
in memory at once. From the primary:
the export and its count must see everything written, not a secondary's older copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from pymongo import DESCENDING, ReadPreference
from pymongo.database import Database

from skyhive.adapters.alerts_repo import alert_from_document
from skyhive.adapters.delivery_records import delivery_of
from skyhive.adapters.mongo import Document, collection
from skyhive.adapters.stations_repo import all_stations
from skyhive.adapters.telemetry_repo import COLLECTION, is_timeseries
from skyhive.domain.alerts import Alert
from skyhive.domain.archive import day_bounds
from skyhive.domain.deliveries import Delivery
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.history import unfold
from skyhive.domain.stations import Station


class MongoArchiveSource:
    def __init__(self, db: Database[Document]) -> None:
        self._db = db
        self._telemetry = collection(db, COLLECTION).with_options(
            read_preference=ReadPreference.PRIMARY
        )
        self._native: bool | None = None

    def _day(self, day: date) -> dict[str, Any]:
        """The filter of the day's documents: buckets by their start (5 s, aligned to the
        epoch, so none straddles midnight), or readings by their time."""
        if self._native is None:
            self._native = is_timeseries(self._db)
        start, end = day_bounds(day)
        return {"ts" if self._native else "start": {"$gte": start, "$lt": end}}

    def _drone_day(self, drone_id: str, day: date) -> list[dict[str, Any]]:
        """One drone's readings of the day, each (drone, seq) once, by seq."""
        start, end = day_bounds(day)
        found: dict[int, dict[str, Any]] = {}
        query = {"drone_id": drone_id, **self._day(day)}
        for doc in self._telemetry.find(query, {"location": 0}).batch_size(1000):
            for r in unfold(doc):
                if start <= r["ts"] < end:
                    found[r["seq"]] = r
        return [found[seq] for seq in sorted(found)]

    def drone_ids(self, day: date) -> list[str]:
        """The drones with history that day."""
        return sorted(str(d) for d in self._telemetry.distinct("drone_id", self._day(day)))

    def readings(self, day: date) -> Iterator[list[dict[str, Any]]]:
        for drone_id in self.drone_ids(day):
            rows = self._drone_day(drone_id, day)
            if rows:
                yield rows

    def count_readings(self, day: date) -> int:
        return sum(len(self._drone_day(d, day)) for d in self.drone_ids(day))

    def deliveries(self, day: date) -> list[Delivery]:
        start, end = day_bounds(day)
        docs = collection(self._db, "deliveries").find({"created_at": {"$gte": start, "$lt": end}})
        # The embedded server compares dates to the second: the day is settled here.
        found = [delivery_of(d) for d in docs]
        return [d for d in found if start <= d.created_at < end]

    def alerts(self, day: date) -> list[Alert]:
        start, end = day_bounds(day)
        docs = (
            collection(self._db, "alerts")
            .find({"opened_at": {"$gte": start, "$lt": end}})
            .sort([("opened_at", DESCENDING), ("_id", 1)])
        )
        found = [alert_from_document(d) for d in docs]
        return [a for a in found if start <= a.opened_at < end]

    def drones(self) -> list[DroneSpec]:
        docs = collection(self._db, "drones").find().sort("_id", 1)
        return [DroneSpec.from_document(d) for d in docs]

    def stations(self) -> list[Station]:
        return all_stations(self._db)
