"""MongoDB client and indexes. Queries stay within documented MongoDB semantics so the same
code runs on the embedded wire-compatible server and on a real replica set."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.database import Database

Document = dict[str, Any]


def connect(uri: str, timeout_ms: int = 5000) -> MongoClient[Document]:
    return MongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connect=False, appname="skyhive"
    )


def ensure_indexes(db: Database[Document]) -> None:
    db.telemetry.create_index([("drone_id", ASCENDING), ("ts", DESCENDING)], name="drone_ts")
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
