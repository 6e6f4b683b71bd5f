"""What the analytics read from MongoDB (the ``AnalyticsRecords`` port): a window's deliveries
(by ``created_at``) and alerts (by ``opened_at``), every drone's rollups starting in a window
(by ``start``), and the fleet registry. Each a range on one indexed time (``mongo_indexes``).

The embedded server compares dates to the second, so each window is asked a second wider
and settled here to the millisecond."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from skyhive.adapters.alerts_repo import alert_from_document
from skyhive.adapters.delivery_records import delivery_of
from skyhive.adapters.mongo import Document, collection, restore_datetimes
from skyhive.adapters.rollups_repo import COLLECTIONS
from skyhive.domain.alerts import Alert
from skyhive.domain.deliveries import Delivery
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.rollups import Level

_SLACK = timedelta(seconds=1)
_PERIOD_FIELDS = ("drone_id", "start", "status_s", "distance_m", "flight_used_pct")


def _range(since: datetime, until: datetime) -> dict[str, datetime]:
    return {"$gte": since - _SLACK, "$lt": until + _SLACK}


class MongoAnalyticsSource:
    def __init__(self, db: Database[Document]) -> None:
        self._db = db

    def deliveries(self, since: datetime, until: datetime) -> list[Delivery]:
        docs = collection(self._db, "deliveries").find({"created_at": _range(since, until)})
        found = (delivery_of(d) for d in docs.batch_size(1000))
        return [d for d in found if since <= d.created_at < until]

    def alerts(self, since: datetime, until: datetime) -> list[Alert]:
        docs = collection(self._db, "alerts").find({"opened_at": _range(since, until)})
        found = (alert_from_document(d) for d in docs.batch_size(1000))
        return [a for a in found if since <= a.opened_at < until]

    def periods(self, level: Level, since: datetime, until: datetime) -> list[dict[str, Any]]:
        c = collection(self._db, COLLECTIONS[level])
        docs = c.find({"start": _range(since, until)}, dict.fromkeys(_PERIOD_FIELDS, 1))
        found = (restore_datetimes(d, ("start",)) for d in docs.batch_size(5000))
        return [d for d in found if since <= d["start"] < until]

    def drones(self) -> list[DroneSpec]:
        docs = collection(self._db, "drones").find().sort("_id", 1)
        return [DroneSpec.from_document(d) for d in docs]
