"""Billing queries over MongoDB ``deliveries``: what is billable, marking it billed, and the
day's and month's figures the overview reports. By ``delivered_month`` (a string), never a
date range: the embedded server keeps ``$set`` dates as text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import UpdateMany
from pymongo.database import Database

from skyhive.adapters.delivery_records import RESOURCE
from skyhive.adapters.mongo import Document, collection
from skyhive.adapters.read_cache import ReadCache


class MongoDeliveryBilling:
    def __init__(self, db: Database[Document], cache: ReadCache) -> None:
        self._c = collection(db, "deliveries")
        self._cache = cache  # marking a delivery billed changes its cached API views

    def billable(self, month: str) -> list[Document]:
        """Deliveries delivered in ``month`` (YYYY-MM) and not billed yet."""
        query = {"status": "delivered", "delivered_month": month, "invoice_id": None}
        fields = [
            "customer_id",
            "pickup_station",
            "delivered_month",
            "price_final",
            "package",
            "distance_km",
        ]
        return list(self._c.find(query, fields))

    def mark_billed(self, billed: dict[str, list[str]]) -> int:
        """Record on each delivery the invoice that bills it (invoice id → delivery ids), only
        where none is recorded yet: a delivery is billed once. Returns how many were marked."""
        ops = [
            UpdateMany({"_id": {"$in": ids}, "invoice_id": None}, {"$set": {"invoice_id": inv}})
            for inv, ids in billed.items()
            if ids
        ]
        if not ops:
            return 0
        res = self._c.bulk_write(ops, ordered=False)
        self._cache.invalidate(RESOURCE, [i for ids in billed.values() for i in ids])
        return int(res.modified_count)

    def unbilled_value(self, month: str) -> tuple[Any, int]:
        """The summed ``price_final`` (as stored: decode it with the money codec) and the
        number of the deliveries delivered in ``month`` that no invoice bills yet."""
        query = {"status": "delivered", "delivered_month": month, "invoice_id": None}
        rows = list(
            self._c.aggregate(
                [
                    {"$match": query},
                    {"$group": {"_id": None, "value": {"$sum": "$price_final"}, "n": {"$sum": 1}}},
                ]
            )
        )
        return (rows[0]["value"], int(rows[0]["n"])) if rows else (None, 0)

    def created_by_status(self, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
        """Deliveries created in ``[start, end)``, per current status: how many, and the mean
        ``delivery_s`` of those that have one (the delivered). The range is two ``$and``
        terms: the embedded server mis-evaluates ``{"$gte": a, "$lt": b}`` in a ``$match``."""
        rows = self._c.aggregate(
            [
                {
                    "$match": {
                        "$and": [{"created_at": {"$gte": start}}, {"created_at": {"$lt": end}}]
                    }
                },
                {
                    "$group": {
                        "_id": "$status",
                        "count": {"$sum": 1},
                        "avg_delivery_s": {"$avg": "$delivery_s"},
                    }
                },
            ]
        )
        return {
            str(r["_id"]): {"count": int(r["count"]), "avg_delivery_s": r.get("avg_delivery_s")}
            for r in rows
        }
