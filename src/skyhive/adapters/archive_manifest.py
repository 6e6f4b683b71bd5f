"""The archive's manifest in MongoDB ``archive_exports`` (``_id`` = the day, ``YYYY-MM-DD``:
each table's rows, bytes and SHA-256, the readings MongoDB held, whether they matched), and
the export lease in ``meta`` (``_id`` ``archive-export``: holder, expiry as epoch ms).

The lease is one conditional upsert: it is taken when free, expired or already ours; a
second archiver's upsert of a held lease fails on the ``_id`` and it stands by. Expiries are
numbers, not dates: the embedded server keeps a ``$set`` date as text, which a range would
not compare.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from skyhive.adapters.mongo import Document, collection, restore_datetimes
from skyhive.domain.archive import ExportRecord, TableFile

LEASE = "archive-export"


def _document(record: ExportRecord) -> Document:
    return {
        "_id": record.day.isoformat(),
        "schema_version": record.schema_version,
        "exported_at": record.exported_at,
        "verified": record.verified,
        "readings_in_mongo": record.readings_in_mongo,
        "open_deliveries": record.open_deliveries,
        "tables": {
            name: {"rows": t.rows, "bytes": t.bytes, "sha256": t.sha256}
            for name, t in record.tables.items()
        },
        "problems": list(record.problems),
    }


def _record(doc: Document) -> ExportRecord:
    doc = restore_datetimes(doc, ("exported_at",))
    tables: dict[str, Any] = doc.get("tables") or {}
    return ExportRecord(
        day=date.fromisoformat(str(doc["_id"])),
        exported_at=doc["exported_at"],
        tables={
            name: TableFile(name, int(t["rows"]), int(t["bytes"]), str(t["sha256"]))
            for name, t in tables.items()
        },
        readings_in_mongo=int(doc.get("readings_in_mongo", 0)),
        verified=bool(doc.get("verified")),
        open_deliveries=int(doc.get("open_deliveries", 0)),
        schema_version=int(doc.get("schema_version", 0)),
        problems=tuple(doc.get("problems") or ()),
    )


class MongoArchiveManifest:
    def __init__(self, db: Database[Document]) -> None:
        self._c = collection(db, "archive_exports")
        self._meta = collection(db, "meta")

    def get(self, day: date) -> ExportRecord | None:
        doc = self._c.find_one({"_id": day.isoformat()})
        return _record(doc) if doc else None

    def put(self, record: ExportRecord) -> None:
        self._c.replace_one({"_id": record.day.isoformat()}, _document(record), upsert=True)

    def all(self) -> list[ExportRecord]:
        return [_record(d) for d in self._c.find().sort("_id", 1)]

    def claim(self, holder: str, now_ms: int, hold_ms: int) -> bool:
        free = {"$or": [{"holder": holder}, {"until_ms": {"$lt": now_ms}}]}
        try:
            self._meta.update_one(
                {"_id": LEASE, **free},
                {"$set": {"holder": holder, "until_ms": now_ms + hold_ms}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    def release(self, holder: str) -> None:
        self._meta.delete_one({"_id": LEASE, "holder": holder})
