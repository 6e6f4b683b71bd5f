"""Alerts in MongoDB ``alerts``: one document per alert, upserted by a deterministic id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import DESCENDING, UpdateOne
from pymongo.database import Database

from skyhive.adapters.mongo import Document
from skyhive.domain.alert_rules import AlertChange


def upsert_ops(changes: Sequence[AlertChange]) -> list[UpdateOne]:
    return [
        UpdateOne(
            {"_id": ch.alert_id},
            {
                "$setOnInsert": {
                    "drone_id": ch.drone_id,
                    "type": ch.type,
                    "state": "open",
                    "opened_at": ch.first_ts,
                },
                "$set": {"severity": ch.severity, "details": ch.details},
                "$max": {"last_seen": ch.last_ts},
                "$inc": {"count": ch.count},
            },
            upsert=True,
        )
        for ch in changes
    ]


def serialize(doc: Document) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k != "_id"}
    out["id"] = str(doc["_id"])
    for k, v in out.items():
        if isinstance(v, datetime):
            out[k] = v.isoformat().replace("+00:00", "Z")
    return out


class AlertsRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._c = db.alerts

    def apply(self, changes: Sequence[AlertChange]) -> None:
        if changes:
            self._c.bulk_write(upsert_ops(changes), ordered=False)

    def get_many(self, ids: Sequence[str]) -> list[Document]:
        return list(self._c.find({"_id": {"$in": list(ids)}}))

    def list(
        self, state: str | None = None, drone_id: str | None = None, limit: int = 100
    ) -> list[Document]:
        query: dict[str, Any] = {}
        if state:
            query["state"] = state
        if drone_id:
            query["drone_id"] = drone_id
        return list(self._c.find(query).sort("opened_at", DESCENDING).limit(limit))
