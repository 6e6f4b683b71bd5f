"""Drone rollups in MongoDB: ``rollups_minute`` and ``rollups_hour`` (``domain/rollups.py``),
and the periods pending: ``rollups_pending``, the minutes written to history and not summed up
yet, and ``rollups_pending_hours``, the hours whose minutes changed.

A rollup is written whole, and only over a figure of fewer readings: two archivers summing up
one minute at once, one of them before the other's readings were stored, cannot leave the
smaller figure behind, and a minute whose raw readings have expired is never summed up again
from what is left of them. The pending ledger is written before the archiver acknowledges the
readings, so a crash loses no minute: another pass (of any archiver) sums it up. Each mark
bumps a version, and a pass clears only the version it summed up, so a reading written
meanwhile keeps its minute pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from skyhive.adapters.mongo import Document, collection, restore_datetimes
from skyhive.domain.rollups import Level, Rollup, period_start, rollup_id
from skyhive.ports.rollups import Key

# The reads of a pass take a window whole and pick its drones here: a pass sums up nearly
# every drone active in it, and the embedded server answers a ``$in`` with a scan of the
# whole collection (see ``TelemetryRepo.readings_of``).

DUPLICATE_KEY = 11000
COLLECTIONS: dict[Level, str] = {"minute": "rollups_minute", "hour": "rollups_hour"}
PENDING: dict[Level, str] = {"minute": "rollups_pending", "hour": "rollups_pending_hours"}
# Fixed at insert (``$setOnInsert``): the embedded server keeps a top-level date written by
# ``$set`` as text, which a range query on ``start`` would not find.
FIXED = ("drone_id", "start", "end")


def _stored_last(last: dict[str, Any] | None) -> dict[str, Any] | None:
    """The period's last reading with its time in epoch ms (nested dates lose precision)."""
    if last is None:
        return None
    out = {k: v for k, v in last.items() if k != "ts"}
    out["ts_ms"] = int(last["ts"].timestamp() * 1000)
    return out


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _read_last(last: dict[str, Any] | None) -> dict[str, Any] | None:
    if not last:
        return None
    out = {k: v for k, v in last.items() if k != "ts_ms"}
    out["ts"] = datetime.fromtimestamp(last["ts_ms"] / 1000, tz=UTC)
    return out


class RollupsRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._c: dict[Level, Collection[Document]] = {
            level: collection(db, name) for level, name in COLLECTIONS.items()
        }
        self._pending: dict[Level, Collection[Document]] = {
            level: collection(db, name) for level, name in PENDING.items()
        }
        self._alerts = collection(db, "alerts")

    # --- rollups ---------------------------------------------------------------------------

    def write(self, rollups: Sequence[Rollup]) -> int:
        """Write each rollup unless a figure of more readings is stored; returns how many
        were written. Empty periods are not stored. New periods go in one ``insert_many``
        (on the embedded server each upsert is a request's worth of work); those already
        stored are upserted, guarded."""
        written = 0
        for level, c in self._c.items():
            docs = [_document(r) for r in rollups if r.level == level and r.readings]
            if not docs:
                continue
            try:
                c.insert_many(docs, ordered=False)
                written += len(docs)
                continue
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                stored = [docs[int(e["index"])] for e in errors]
                written += len(docs) - len(stored)
            written += _guarded_upserts(c, stored)
        return written

    def lasts(
        self, drone_ids: Sequence[str], since: datetime, until: datetime
    ) -> dict[str, dict[datetime, dict[str, Any]]]:
        """The last reading of each stored minute of these drones in [since, until), by
        drone and minute."""
        query = {"start": {"$gte": since, "$lt": until}}
        wanted = set(drone_ids)
        out: dict[str, dict[datetime, dict[str, Any]]] = {}
        for doc in self._c["minute"].find(query, {"drone_id": 1, "start": 1, "last": 1}):
            if doc["drone_id"] not in wanted:
                continue
            last = _read_last(doc.get("last"))
            if last is not None:
                start = restore_datetimes(doc, ("start",))["start"]
                out.setdefault(doc["drone_id"], {})[_utc(start)] = last
        return out

    def minutes(self, drone_ids: Sequence[str], since: datetime, until: datetime) -> list[Document]:
        """The stored minutes of these drones in [since, until)."""
        query = {"start": {"$gte": since, "$lt": until}}
        wanted = set(drone_ids)
        docs = self._c["minute"].find(query, {"last": 0})
        return [restore_datetimes(d, FIXED[1:]) for d in docs if d["drone_id"] in wanted]

    def series(
        self,
        drone_id: str,
        level: Level,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[Document]:
        """A drone's rollups of one level in [since, until), newest first."""
        window: dict[str, datetime] = {}
        if since:
            window["$gte"] = period_start(since, level)
        if until:
            window["$lt"] = until
        query: dict[str, Any] = {"drone_id": drone_id} | ({"start": window} if window else {})
        hidden = ("_id", "drone_id", "last", "battery_sum", "capacity_wh")
        cursor = self._c[level].find(query, dict.fromkeys(hidden, 0))
        docs = cursor.sort("start", DESCENDING).limit(limit)
        return [restore_datetimes(d, FIXED[1:]) for d in docs]

    def alert_counts(
        self, drone_ids: Sequence[str], since: datetime, until: datetime
    ) -> dict[Key, int]:
        """Alerts opened per (drone, minute) in [since, until)."""
        query = {"opened_at": {"$gte": since, "$lt": until}}
        wanted = set(drone_ids)
        out: dict[Key, int] = {}
        for doc in self._alerts.find(query, {"drone_id": 1, "opened_at": 1}):
            if doc["drone_id"] not in wanted:
                continue
            opened = restore_datetimes(doc, ("opened_at",))["opened_at"]
            key = (doc["drone_id"], period_start(opened, "minute"))
            out[key] = out.get(key, 0) + 1
        return out

    # --- the pending ledger ----------------------------------------------------------------

    def mark(self, level: Level, keys: Iterable[Key], now: datetime) -> None:
        """Mark these periods pending (``now``: when first marked, kept)."""
        ops = [
            UpdateOne(
                {"_id": rollup_id(d, start)},
                {
                    "$inc": {"v": 1},
                    "$setOnInsert": {"drone_id": d, "start": start, "marked_at": now},
                },
                upsert=True,
            )
            for d, start in keys
        ]
        if ops:
            _upsert_racing(self._pending[level], ops)

    def pending(
        self, level: Level, before: datetime, limit: int, marked_before: datetime | None = None
    ) -> list[tuple[Key, int]]:
        """Pending periods that started before ``before`` (or were first marked before
        ``marked_before``), oldest first, with their version."""
        query: dict[str, Any] = {"start": {"$lt": before}}
        if marked_before is not None:
            query = {"$or": [query, {"marked_at": {"$lt": marked_before}}]}
        docs = self._pending[level].find(query).sort("start", ASCENDING).limit(limit)
        out = []
        for doc in docs:
            doc = restore_datetimes(doc, ("start",))
            out.append(((doc["drone_id"], doc["start"]), int(doc.get("v", 0))))
        return out

    def clear(self, level: Level, done: Iterable[tuple[Key, int]]) -> None:
        """Forget these periods, each only at the version summed up: one delete per version
        (nearly always one)."""
        by_version: dict[int, list[str]] = {}
        for (d, start), v in done:
            by_version.setdefault(v, []).append(rollup_id(d, start))
        for v, ids in by_version.items():
            self._pending[level].delete_many({"_id": {"$in": ids}, "v": v})


def _document(r: Rollup) -> Document:
    doc = r.document()
    doc["_id"] = r.id
    doc["last"] = _stored_last(r.last)
    return doc


def _guarded_upserts(c: Collection[Document], docs: Sequence[Document]) -> int:
    """Each document written over a stored one of no more readings; returns how many."""
    ops = []
    for doc in docs:
        fields = {k: v for k, v in doc.items() if k != "_id"}
        fixed = {k: fields.pop(k) for k in FIXED}
        guard = {"_id": doc["_id"], "readings": {"$lte": doc["readings"]}}
        ops.append(UpdateOne(guard, {"$set": fields, "$setOnInsert": fixed}, upsert=True))
    try:
        c.bulk_write(ops, ordered=False)
        return len(ops)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return len(ops) - len(errors)  # the rest: a bigger figure is stored


def _upsert_racing(c: Collection[Document], ops: list[UpdateOne]) -> None:
    """Unordered upserts; two processes inserting one ``_id`` at once: the loser's upsert
    fails on the key, and is sent again (then it updates)."""
    for _ in range(3):
        try:
            c.bulk_write(ops, ordered=False)
            return
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            ops = [ops[int(e["index"])] for e in errors]
    raise RuntimeError("rollup ledger write kept failing on a duplicate key")
