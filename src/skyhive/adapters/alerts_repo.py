"""Alerts in MongoDB ``alerts``: one document per alert, upserted by a deterministic id.

The active alert of each (drone, type) is mirrored in Redis (``alertstate:{drone}``: type →
``id|severity|state``) so the processor never queries MongoDB to know what is open; the
existence of that hash says whether a drone has any.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.database import Database

from skyhive.adapters.mongo import Document, find_page, restore_datetimes
from skyhive.domain.alert_lifecycle import ACTIVE_STATES, AlertUpdate

DATE_FIELDS = ("opened_at", "last_seen", "resolved_at", "acknowledged_at")


def alert_state_key(drone_id: str) -> str:
    return f"alertstate:{drone_id}"


def _insert_and_set(u: AlertUpdate) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a new alert's document gets once, and what every upsert of ``u`` sets."""
    on_insert: dict[str, Any] = {"drone_id": u.drone_id, "type": u.type, "opened_at": u.first_ts}
    fields: dict[str, Any] = {"severity": u.severity}
    if u.details:
        fields["details"] = u.details
    if u.action:
        fields["action"] = u.action
    if u.resolved_at is not None:
        fields.update(state="resolved", resolved_at=u.resolved_at, resolved_by="auto")
    else:
        on_insert["state"] = "open"
    return on_insert, fields


def upsert_ops(updates: Sequence[AlertUpdate]) -> list[UpdateOne]:
    ops = []
    for u in updates:
        on_insert, fields = _insert_and_set(u)
        update: dict[str, Any] = {"$setOnInsert": on_insert, "$set": fields}
        if u.count:
            update["$inc"] = {"count": u.count}
            update["$max"] = {"last_seen": u.last_ts}
        else:
            on_insert["count"] = 0
        ops.append(UpdateOne({"_id": u.alert_id}, update, upsert=True))
    return ops


def new_document(u: AlertUpdate) -> Document:
    """The document that upserting ``u`` creates when the alert is new (``u.opened``): all of
    it is in the update, so it can be announced without reading MongoDB back."""
    on_insert, fields = _insert_and_set(u)
    doc: Document = {"_id": u.alert_id, **on_insert, **fields, "count": u.count}
    if u.count:
        doc["last_seen"] = u.last_ts
    return doc


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

    def apply(self, updates: Sequence[AlertUpdate]) -> None:
        if updates:
            self._c.bulk_write(upsert_ops(updates), ordered=False)

    def get(self, alert_id: str) -> Document | None:
        doc = self._c.find_one({"_id": alert_id})
        return restore_datetimes(doc, DATE_FIELDS) if doc else None

    def get_many(self, ids: Sequence[str]) -> list[Document]:
        docs = self._c.find({"_id": {"$in": list(ids)}})
        return [restore_datetimes(d, DATE_FIELDS) for d in docs]

    def list(
        self,
        state: str | None = None,
        drone_id: str | None = None,
        limit: int = 100,
        severity: str | None = None,
        alert_type: str | None = None,
        since: datetime | None = None,
        before: str | None = None,
    ) -> list[Document]:
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
        docs = find_page(self._c, query, "opened_at", limit, before)
        return [restore_datetimes(d, DATE_FIELDS) for d in docs]

    def count_by_severity(self, state: str) -> dict[str, int]:
        """How many alerts are in ``state``, per severity."""
        rows = self._c.aggregate(
            [{"$match": {"state": state}}, {"$group": {"_id": "$severity", "count": {"$sum": 1}}}]
        )
        return {str(r["_id"]): int(r["count"]) for r in rows}

    def change_state(
        self, alert_id: str, from_states: Sequence[str], fields: dict[str, Any]
    ) -> Document | None:
        """Set ``fields`` if the alert is in one of ``from_states``; returns the new document,
        or None when it is not (missing, or in another state)."""
        doc = self._c.find_one_and_update(
            {"_id": alert_id, "state": {"$in": list(from_states)}},
            {"$set": fields},
            return_document=ReturnDocument.AFTER,
        )
        return restore_datetimes(doc, DATE_FIELDS) if doc else None


__all__ = ["ACTIVE_STATES", "AlertsRepo", "alert_state_key", "serialize"]
