"""MongoDB client and indexes. Queries stay within documented MongoDB semantics so the same
code runs on the embedded wire-compatible server and on a real replica set."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient, ReadPreference, WriteConcern
from pymongo.collection import Collection
from pymongo.database import Database

Document = dict[str, Any]

# What a write must reach before it counts, per collection, whatever the connection string
# says. Records a person or a drone was told about (an order accepted, an alert, an invoice,
# a key or credential issued, an audit entry) must survive the primary's failover: a majority
# of the replica set, journaled. History is written in idempotent bulk upserts of readings the
# bus still holds until the write returns: one member is enough, and much faster. Reads go to
# the primary: the API reads back what it has just written.
MAJORITY = WriteConcern(w="majority", j=True)
ONE = WriteConcern(w=1)
WRITE_CONCERNS: dict[str, WriteConcern] = {"telemetry": ONE}  # every other collection: MAJORITY


def collection(db: Database[Document], name: str) -> Collection[Document]:
    """A collection with its write concern (``WRITE_CONCERNS``) and primary reads."""
    return db.get_collection(
        name,
        write_concern=WRITE_CONCERNS.get(name, MAJORITY),
        read_preference=ReadPreference.PRIMARY,
    )


def connect(uri: str, timeout_ms: int = 5000) -> MongoClient[Document]:
    return MongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connect=False, appname="skyhive"
    )


def ensure_indexes(db: Database[Document]) -> None:
    from skyhive.adapters.telemetry_repo import ensure_collection

    ensure_collection(db)  # history: buckets and their index, or a time-series collection
    db.alerts.create_index(
        [("drone_id", ASCENDING), ("type", ASCENDING), ("state", ASCENDING)],
        name="drone_type_state",
    )
    db.alerts.create_index([("state", ASCENDING), ("opened_at", DESCENDING)], name="state_opened")
    db.stations.create_index([("location", "2dsphere")], name="location_2dsphere")
    db.deliveries.create_index(
        [("status", ASCENDING), ("created_at", DESCENDING)], name="status_created"
    )
    db.deliveries.create_index(
        [("customer_id", ASCENDING), ("created_at", DESCENDING)], name="customer"
    )
    db.deliveries.create_index([("drone_id", ASCENDING), ("created_at", DESCENDING)], name="drone")
    db.drones.create_index([("status", ASCENDING)], name="status")
    db.deliveries.create_index(
        [("status", ASCENDING), ("delivered_month", ASCENDING)], name="billing"
    )
    # One customer per address, case-insensitively (``email_key`` is the address lower-cased).
    db.customers.create_index([("email_key", ASCENDING)], unique=True, name="email_key")
    db.invoices.create_index(
        [("customer_id", ASCENDING), ("invoice_date", DESCENDING)], name="customer_date"
    )
    db.invoices.create_index([("status", ASCENDING), ("due_date", ASCENDING)], name="status_due")
    db.invoices.create_index([("period", ASCENDING)], name="period")
    # Brokers poll for credentials changed since their last look (rotation, revocation).
    db.mqtt_credentials.create_index([("changed_ms", ASCENDING)], name="changed")


def restore_datetimes(doc: Document, fields: tuple[str, ...]) -> Document:
    """The embedded server stores a top-level date written by ``$set`` as a string
    (``'2026-11-23 13:00:06.221000'``); read it back as the UTC datetime it was. A no-op on
    MongoDB, where the value is a date already."""
    for name in fields:
        value = doc.get(name)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                continue
            doc[name] = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return doc


class UnknownCursor(LookupError):
    """A paging cursor that names no record of the list being paged."""


def find_page(
    collection: Collection[Document],
    query: dict[str, Any],
    time_field: str,
    limit: int,
    before: str | None = None,
    owner: dict[str, Any] | None = None,
) -> list[Document]:
    """Newest ``time_field`` first, then by ``_id``; ``before`` (an ``_id``) pages on: only
    the records after it in that order (keyset paging, stable while records are added). The
    cursor must be one of ``owner``'s when that is given (the last of a previous page always
    is), else :class:`UnknownCursor`. Dates come back as datetimes (``restore_datetimes``).

    The server is asked for the records at or before the cursor's time, and the cursor's own
    time is settled here: the embedded server compares dates to the second, so records of
    the cursor's second are told apart in Python (on MongoDB they are only its ties)."""
    order = [(time_field, DESCENDING), ("_id", ASCENDING)]
    if before is None:
        docs = collection.find(query).sort(order).limit(limit)
        return [restore_datetimes(d, (time_field,)) for d in docs]
    anchor = collection.find_one({"_id": before, **(owner or {})}, {time_field: 1})
    if anchor is None:
        raise UnknownCursor(before)
    at = restore_datetimes(anchor, (time_field,))[time_field]
    window = {time_field: {"$lte": anchor[time_field]}}
    page: list[Document] = []
    for doc in collection.find({"$and": [query, window]} if query else window).sort(order):
        doc = restore_datetimes(doc, (time_field,))
        t = doc[time_field]
        if t < at or (t == at and doc["_id"] > before):
            page.append(doc)
            if len(page) == limit:
                break
    return page
