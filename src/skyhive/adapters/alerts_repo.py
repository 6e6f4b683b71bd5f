"""Alerts in MongoDB ``alerts``: one document per alert, upserted by a deterministic id (the
``AlertStore`` port). The active alert of each (drone, type) is mirrored in Redis
(``adapters/active_alerts.py``) so the processor never queries MongoDB to know what is open."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.database import Database

from skyhive.adapters.mongo import Document, collection, find_page, restore_datetimes
from skyhive.domain.alert_lifecycle import UNACKNOWLEDGED, AlertUpdate
from skyhive.domain.alerts import Alert, insert_and_set, resolution_fields

DATE_FIELDS = ("opened_at", "last_seen", "resolved_at", "acknowledged_at")
# The states in which an alert may still ground its drone (``Alert.grounds``).
GROUNDING_STATES = ("open", "acknowledged", UNACKNOWLEDGED)


def upsert_ops(updates: Sequence[AlertUpdate]) -> list[UpdateOne]:
    """Each update's upsert, and for a resolution its state change, guarded by the state
    the stored alert is in (see ``resolution_fields``)."""
    ops = []
    for u in updates:
        resolved = resolution_fields(u)
        if resolved is not None:
            ops.append(UpdateOne({"_id": u.alert_id, "state": "open"}, {"$set": resolved}))
            acked = {**resolved, "state": "resolved"}
            ops.append(UpdateOne({"_id": u.alert_id, "state": "acknowledged"}, {"$set": acked}))
        on_insert, fields = insert_and_set(u)
        update: dict[str, Any] = {"$setOnInsert": on_insert, "$set": fields}
        if u.count:
            update["$inc"] = {"count": u.count}
            update["$max"] = {"last_seen": u.last_ts}
        else:
            on_insert["count"] = 0
        ops.append(UpdateOne({"_id": u.alert_id}, update, upsert=True))
    return ops


def alert_from_document(doc: Document) -> Alert:
    fields = {k: v for k, v in restore_datetimes(doc, DATE_FIELDS).items() if k != "_id"}
    return Alert.model_validate({"id": str(doc["_id"]), **fields})


def serialize(doc: Document) -> dict[str, Any]:
    """A document JSON-ready: its ``_id`` as ``id``, its (top-level) times ISO 8601 UTC."""
    out = {k: v for k, v in doc.items() if k != "_id"}
    out["id"] = str(doc["_id"])
    for k, v in out.items():
        if isinstance(v, datetime):
            out[k] = v.isoformat().replace("+00:00", "Z")
    return out


class AlertsRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._c = collection(db, "alerts")

    def apply(self, updates: Sequence[AlertUpdate]) -> None:
        if updates:
            self._c.bulk_write(upsert_ops(updates), ordered=False)

    def insert_missing(self, alerts: Sequence[Alert]) -> int:
        """Store alerts whose whole life is known already (simulated history) where the id
        is free; one already there (acknowledged since, perhaps) is left as it is. Returns
        how many were new."""
        if not alerts:
            return 0
        ops = [
            UpdateOne(
                {"_id": a.id},
                {"$setOnInsert": a.model_dump(exclude={"id"}, exclude_unset=True)},
                upsert=True,
            )
            for a in alerts
        ]
        return int(self._c.bulk_write(ops, ordered=False).upserted_count)

    def get(self, alert_id: str) -> Alert | None:
        doc = self._c.find_one({"_id": alert_id})
        return alert_from_document(doc) if doc else None

    def get_many(self, ids: Sequence[str]) -> list[Alert]:
        return [alert_from_document(d) for d in self._c.find({"_id": {"$in": list(ids)}})]

    def grounding(self) -> list[Alert]:
        """The alerts that ground their drones: what the grounded set is rebuilt from
        (one query per state: no ``$in``)."""
        return [
            alert_from_document(d)
            for state in GROUNDING_STATES
            for d in self._c.find({"state": state, "grounding": True})
        ]

    def list(
        self,
        state: str | None = None,
        drone_id: str | None = None,
        limit: int = 100,
        severity: str | None = None,
        alert_type: str | None = None,
        since: datetime | None = None,
        before: str | None = None,
    ) -> list[Alert]:
        """Newest opened first (then by id); ``before`` pages on (see :func:`find_page`)."""
        query: dict[str, Any] = {}
        for name, value in (
            ("state", state),
            ("drone_id", drone_id),
            ("severity", severity),
            ("type", alert_type),
        ):
            if value:
                query[name] = value
        if since is not None:
            query["last_seen"] = {"$gte": since}
        return [
            alert_from_document(d) for d in find_page(self._c, query, "opened_at", limit, before)
        ]

    def count_by_severity(self, state: str) -> dict[str, int]:
        """How many alerts are in ``state``, per severity."""
        rows = self._c.aggregate(
            [{"$match": {"state": state}}, {"$group": {"_id": "$severity", "count": {"$sum": 1}}}]
        )
        return {str(r["_id"]): int(r["count"]) for r in rows}

    def change_state(
        self, alert_id: str, from_states: Sequence[str], fields: dict[str, Any]
    ) -> Alert | None:
        """Set ``fields`` if the alert is in one of ``from_states``; returns the new document,
        or None when it is not (missing, or in another state)."""
        doc = self._c.find_one_and_update(
            {"_id": alert_id, "state": {"$in": list(from_states)}},
            {"$set": fields},
            return_document=ReturnDocument.AFTER,
        )
        return alert_from_document(doc) if doc else None
