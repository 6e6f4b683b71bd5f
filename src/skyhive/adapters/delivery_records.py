"""Deliveries in MongoDB ``deliveries``: the record, with its timeline, the source of truth.
Every write keeps the Redis dispatch queue (``dispatch_queue.py``) in step, and the
dispatcher's journaled assignments are copied here in bulk (``record_journal``).

Documents map to and from the domain's :class:`Delivery` here only: GeoJSON points, amounts
through the money codec, and top-level dates the embedded server returns as text."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from skyhive.adapters.dispatch_queue import RedisDispatchQueue, order_summary, pending_order
from skyhive.adapters.money import MoneyCodec, decode_money
from skyhive.adapters.mongo import Document, collection, find_page, restore_datetimes
from skyhive.adapters.read_cache import ReadCache
from skyhive.domain.conformance import Declaration
from skyhive.domain.deliveries import Delivery, Flight, Point, TransitionRefused, can_transition
from skyhive.domain.dispatch import PendingOrder

RESOURCE = "deliveries"  # in the read cache
DATE_FIELDS = ("created_at", "updated_at", "eta", "delivered_at")
# What watching an active delivery reads: not the timeline or the dispatch record.
FLIGHT_FIELDS = [
    "status",
    "drone_id",
    "destination",
    "pickup_location",
    "eta",
    "updated_at",
    "return_station",
    "declaration",
]


def _point(geometry: dict[str, Any]) -> Point:
    lon, lat = geometry["coordinates"]
    return Point(lat=lat, lon=lon)


def _geometry(point: Point) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [point.lon, point.lat]}


def _declaration_doc(d: Declaration) -> dict[str, Any]:
    """A declaration as the record keeps it: the corridor a GeoJSON LineString."""
    doc = d.model_dump(exclude={"corridor"})
    return {**doc, "corridor": {"type": "LineString", "coordinates": [list(p) for p in d.corridor]}}


def _declaration(doc: dict[str, Any] | None) -> Declaration | None:
    if not doc:
        return None
    return Declaration.model_validate({**doc, "corridor": doc["corridor"]["coordinates"]})


def delivery_of(doc: Document) -> Delivery:
    """The domain's delivery from its stored document."""
    doc = restore_datetimes(doc, DATE_FIELDS)
    return Delivery.model_validate(
        {
            **doc,
            "id": doc["_id"],
            "pickup_location": _point(doc["pickup_location"]),
            "destination": _point(doc["destination"]),
            "price_estimate": decode_money(doc.get("price_estimate")),
            "price_final": decode_money(doc.get("price_final")),
            "declaration": _declaration(doc.get("declaration")),
        }
    )


def _journal_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A journal record's fields as the MongoDB record stores them (dates as dates)."""
    fields = dict(record["fields"])
    fields["eta"] = datetime.fromisoformat(fields["eta"])
    dispatch = dict(fields["dispatch"])
    for name in ("assigned_at", "accepted_at"):
        dispatch[name] = datetime.fromisoformat(dispatch[name])
    fields["dispatch"] = dispatch
    return fields


def _advanced(
    doc: Document, status: str, at: datetime, note: str, fields: dict[str, Any]
) -> dict[str, Any]:
    """The ``$set`` that moves ``doc`` to ``status``: the timeline is rewritten whole (the
    embedded server mangles ``$push`` of sub-documents) and the version bumped. A step is
    never dated before the one it follows: the processes that write steps read their own
    clocks (a tracker's "en route" came out a millisecond before the pickup it follows)."""
    timeline = list(doc.get("timeline", []))
    if timeline and isinstance(timeline[-1].get("at"), datetime):
        at = max(at, timeline[-1]["at"])
    timeline.append({"status": status, "at": at, "note": note})
    return {
        **fields,
        "status": status,
        "timeline": timeline,
        "updated_at": at,
        "version": int(doc.get("version", 0)) + 1,
    }


class MongoDeliveryRecords:
    def __init__(
        self,
        db: Database[Document],
        queue: RedisDispatchQueue,
        money: MoneyCodec,
        cache: ReadCache,
    ) -> None:
        self._c = collection(db, "deliveries")
        self._queue = queue
        self._money = money
        self._cache = cache  # every write to a record invalidates its cached API views

    def _stored(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Fields as the document keeps them: amounts through the codec, points as GeoJSON."""
        out = {}
        for name, value in fields.items():
            if isinstance(value, Decimal):
                value = self._money.encode(value)
            elif isinstance(value, Point):
                value = _geometry(value)
            elif isinstance(value, Declaration):
                value = _declaration_doc(value)
            out[name] = value
        return out

    def _document(self, delivery: Delivery) -> Document:
        """The record of ``delivery``: the fields it has set, as the document keeps them."""
        fields = delivery.model_dump(include=delivery.model_fields_set - {"id"})
        fields |= {name: getattr(delivery, name) for name in ("pickup_location", "destination")}
        if delivery.declaration is not None:
            fields["declaration"] = delivery.declaration
        return {"_id": delivery.id, **self._stored(fields)}

    def insert(self, delivery: Delivery) -> tuple[Delivery, bool]:
        """Insert a new delivery (the fields it was made with); with its id already taken
        (the same order id), return the existing one instead. Returns (delivery, created)."""
        doc = self._document(delivery)
        try:
            self._c.insert_one(doc)
        except DuplicateKeyError:
            existing = self.get(delivery.id)
            if existing is None:  # raced with a delete; there is no delete, so unreachable
                raise
            return existing, False
        self._cache.invalidate(RESOURCE, [delivery.id])
        self._queue.enqueue(doc, time.time())
        return delivery, True

    def insert_missing(self, deliveries: Sequence[Delivery]) -> int:
        """Store deliveries whose whole life is known already (simulated history), in one
        bulk write, only where the id is free: a record already there (billed since,
        perhaps) is left as it is, so storing them again changes nothing. Not queued for
        dispatch. Returns how many were new."""
        if not deliveries:
            return 0
        ops = []
        for d in deliveries:
            doc = self._document(d)
            ops.append(UpdateOne({"_id": doc.pop("_id")}, {"$setOnInsert": doc}, upsert=True))
        upserted = self._c.bulk_write(ops, ordered=False).upserted_ids or {}
        new = [str(i) for i in upserted.values()]
        if new:
            self._cache.invalidate(RESOURCE, new)
        return len(new)

    def requeue_pending(self) -> int:
        """Queue every delivery MongoDB holds as pending that Redis lost track of (a crash
        between the two writes, a Redis restored from an older file). Run at dispatcher start.

        Not one Redis has moved on (``RedisDispatchQueue.requeue``): a dispatcher that died
        after assigning and commanding, before its record was written, leaves the record
        pending and the assignment in Redis's status and journal; the journal is recorded,
        and queueing the delivery again would assign it to a second drone."""
        queued = set(self._queue.pending(1_000_000))
        n = 0
        for doc in self._c.find({"status": "pending"}):
            if str(doc["_id"]) not in queued and self._queue.requeue(
                restore_datetimes(doc, DATE_FIELDS)
            ):
                n += 1
        return n

    def restore_orders(self, delivery_ids: list[str]) -> dict[str, PendingOrder]:
        """Summaries rebuilt from the record for queued deliveries that have none; the
        fast paths of those no longer pending follow their record."""
        out: dict[str, PendingOrder] = {}
        for doc in self._c.find({"_id": {"$in": delivery_ids}}):
            delivery_id = str(doc["_id"])
            if doc["status"] == "pending":
                doc = restore_datetimes(doc, DATE_FIELDS)
                summary = order_summary(doc, doc["created_at"].timestamp())
                self._queue.put_summary(delivery_id, summary)
                out[delivery_id] = pending_order(summary)
            else:
                self._queue.reconcile(delivery_id, str(doc["status"]))
        return out

    def get(self, delivery_id: str) -> Delivery | None:
        doc = self._c.find_one({"_id": delivery_id})
        return delivery_of(doc) if doc is not None else None

    def find(
        self,
        status: str | None = None,
        customer_id: str | None = None,
        drone_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Delivery]:
        """Newest first (then by id); ``before`` pages on (see :func:`find_page`)."""
        query: dict[str, Any] = {}
        if status:
            query["status"] = status
        if customer_id:
            query["customer_id"] = customer_id
        if drone_id:
            query["drone_id"] = drone_id
        owner = {"customer_id": customer_id} if customer_id else None
        docs = find_page(self._c, query, "created_at", limit, before, owner)
        return [delivery_of(d) for d in docs]

    def transition(
        self,
        delivery_id: str,
        new_status: str,
        at: datetime,
        note: str,
        fields: dict[str, Any] | None = None,
    ) -> Delivery:
        """Move a delivery to ``new_status`` if the lifecycle allows it, appending to its
        timeline, with ``fields`` set too. Optimistic concurrency on ``version``: of two
        racing transitions exactly one wins; the loser re-reads and is judged against the
        new status."""
        for _ in range(5):
            doc = self._c.find_one({"_id": delivery_id})
            if doc is None:
                raise KeyError(delivery_id)
            current = str(doc["status"])
            if not can_transition(current, new_status):
                raise TransitionRefused(current, new_status)
            update = _advanced(doc, new_status, at, note, self._stored(fields or {}))
            res = self._c.update_one(
                {"_id": delivery_id, "version": doc.get("version", 0)}, {"$set": update}
            )
            if res.modified_count == 1:
                self._cache.invalidate(RESOURCE, [delivery_id])
                self._queue.follow(delivery_id, new_status, doc.get("drone_id"))
                return delivery_of({**doc, **update})
        raise TransitionRefused("busy", new_status)

    def add_note(self, delivery_id: str, at: datetime, note: str) -> None:
        """A timeline entry under the current status (the MAVLink gateway's command
        outcomes); idempotent: a note already there is not added again. Optimistic on
        ``version`` like :meth:`transition`."""
        status = ""
        for _ in range(5):
            doc = self._c.find_one({"_id": delivery_id})
            if doc is None:
                raise KeyError(delivery_id)
            status = str(doc["status"])
            if any(step.get("note") == note for step in doc.get("timeline", [])):
                return
            update = _advanced(doc, status, at, note, {})
            del update["updated_at"]  # a note is no change of the delivery itself
            res = self._c.update_one(
                {"_id": delivery_id, "version": doc.get("version", 0)}, {"$set": update}
            )
            if res.modified_count == 1:
                self._cache.invalidate(RESOURCE, [delivery_id])
                return
        raise TransitionRefused("busy", status)

    def flights(self, delivery_ids: list[str]) -> dict[str, Flight]:
        """What watching these deliveries needs, by id, in one read."""
        if not delivery_ids:
            return {}
        out = {}
        for doc in self._c.find({"_id": {"$in": delivery_ids}}, FLIGHT_FIELDS):
            doc = restore_datetimes(doc, DATE_FIELDS)
            eta = doc.get("eta")
            out[str(doc["_id"])] = Flight(
                id=str(doc["_id"]),
                status=str(doc["status"]),
                drone_id=doc.get("drone_id"),
                pickup=_point(doc["pickup_location"]),
                destination=_point(doc["destination"]),
                eta=eta if isinstance(eta, datetime) else None,
                updated_at=doc["updated_at"],
                return_station=doc.get("return_station"),
                declared=(doc.get("declaration") or {}).get("drone_id") == doc.get("drone_id"),
            )
        return out

    def record_journal(
        self, records: dict[str, dict[str, Any]]
    ) -> dict[str, tuple[str, str | None]]:
        """Write journaled assignments to MongoDB in one bulk write (each conditional on the
        record still being the pending copy just read), then drop them from the journal.

        Idempotent: one already recorded is just dropped. Returns the assignments that lost
        to a change made in MongoDB meanwhile (a cancel): delivery id → (drone, status now);
        their claims are released and their drones must be recalled by the caller. One that
        lost only the version race stays in the journal for the next call."""
        ids = list(records)
        docs = {
            str(d["_id"]): restore_datetimes(d, DATE_FIELDS)
            for d in self._c.find({"_id": {"$in": ids}})
        }
        done: list[str] = []
        lost: dict[str, tuple[str, str | None]] = {}
        ops, written = [], []
        for delivery_id, record in records.items():
            doc, drone = docs.get(delivery_id), str(record["drone_id"])
            if doc is None:
                lost[delivery_id] = (drone, None)
            elif doc["status"] == "assigned" and doc.get("drone_id") == drone:
                done.append(delivery_id)
            elif doc["status"] != "pending":
                lost[delivery_id] = (drone, str(doc["status"]))
            else:
                at = datetime.fromisoformat(record["at"])
                update = _advanced(doc, "assigned", at, record["note"], _journal_fields(record))
                query = {"_id": delivery_id, "version": doc.get("version", 0), "status": "pending"}
                ops.append(UpdateOne(query, {"$set": update}))
                written.append(delivery_id)
        if ops:
            res = self._c.bulk_write(ops, ordered=False)
            self._cache.invalidate(RESOURCE, written)
            if res.matched_count == len(ops):
                done += written
            else:
                now = self._c.find({"_id": {"$in": written}}, {"status": 1, "drone_id": 1})
                done += [
                    str(d["_id"])
                    for d in now
                    if d["status"] == "assigned"
                    and d.get("drone_id") == records[str(d["_id"])]["drone_id"]
                ]
        self._queue.settle_journal(done, lost)
        return lost

    def set_fields_many(self, fields_by_id: dict[str, dict[str, Any]]) -> None:
        if fields_by_id:
            ops = [
                UpdateOne({"_id": i}, {"$set": self._stored(f)}) for i, f in fields_by_id.items()
            ]
            self._c.bulk_write(ops, ordered=False)
            self._cache.invalidate(RESOURCE, fields_by_id)
