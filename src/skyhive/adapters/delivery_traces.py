"""Deliveries (MongoDB ``deliveries``) as the station rollups read them: pickup station,
creation and timeline of every delivery created or moved in a window.

A delivery with a step in ``[since, until)`` was created before ``until`` and last updated
at or after ``since``: every transition sets ``updated_at`` to its step's time, and no step
is dated after the last. So the filter misses none. The embedded server keeps a date written
by ``$set`` as text and compares it to the second, so the bound is taken a second early (a
few more records, which the rollup's own window leaves out)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from pymongo.database import Database

from skyhive.adapters.mongo import Document, collection, restore_datetimes
from skyhive.domain.station_rollups import DeliveryTrace

FIELDS = {"pickup_station": 1, "created_at": 1, "timeline": 1}
SECOND = timedelta(seconds=1)


def trace_of(doc: Document) -> DeliveryTrace:
    steps = [restore_datetimes(dict(s), ("at",)) for s in doc.get("timeline") or ()]
    return DeliveryTrace(
        station_id=str(doc["pickup_station"]),
        created_at=restore_datetimes(doc, ("created_at",))["created_at"],
        steps=tuple((str(s["status"]), s["at"]) for s in steps),
    )


class MongoDeliveryTraces:
    def __init__(self, db: Database[Document]) -> None:
        self._c = collection(db, "deliveries")

    def touched(self, since: datetime, until: datetime) -> Iterator[DeliveryTrace]:
        query = {"updated_at": {"$gte": since - SECOND}, "created_at": {"$lt": until}}
        for doc in self._c.find(query, FIELDS):
            yield trace_of(doc)
