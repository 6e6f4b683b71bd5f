"""MongoDB client, and each collection's write concern and read preference. Queries stay
within documented MongoDB semantics so the same code runs on the embedded wire-compatible
server and on a real replica set (indexes: ``mongo_indexes``; features only some servers
have: ``mongo_capabilities``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient, ReadPreference, WriteConcern
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.read_preferences import SecondaryPreferred, _ServerMode

Document = dict[str, Any]

# What a write must reach before it counts, per collection, whatever the connection string
# says. Records a person or a drone was told about (an order accepted, an alert, an invoice,
# a key or credential issued, an audit entry) must survive the primary's failover: a majority
# of the replica set, journaled. History is written in idempotent bulk upserts of readings the
# bus still holds until the write returns: one member is enough, and much faster.
MAJORITY = WriteConcern(w="majority", j=True)
ONE = WriteConcern(w=1)
WRITE_CONCERNS: dict[str, WriteConcern] = {"telemetry": ONE}  # every other collection: MAJORITY

# Where reads go, per collection. The primary, by default: business records are read back
# right after they are written (an order, a payment, an acknowledgement, a revoked key) and a
# secondary may not have them yet. History may lag a little: the archiver writes a reading
# seconds after it arrived anyway, and charts over hours of it are the heaviest reads SkyHive
# makes, so a secondary takes them off the primary, which takes the ingest writes; never one
# more than 90 s behind (the least maxStalenessSeconds MongoDB takes), else the primary.
READ_PREFERENCES: dict[str, _ServerMode] = {
    "telemetry": SecondaryPreferred(max_staleness=90)
}  # every other collection: PRIMARY


def collection(db: Database[Document], name: str) -> Collection[Document]:
    """A collection with its write concern and read preference (the tables above)."""
    return db.get_collection(
        name,
        write_concern=WRITE_CONCERNS.get(name, MAJORITY),
        read_preference=READ_PREFERENCES.get(name, ReadPreference.PRIMARY),
    )


def connect(uri: str, timeout_ms: int = 5000) -> MongoClient[Document]:
    return MongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connect=False, appname="skyhive"
    )


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
