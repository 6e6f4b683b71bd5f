"""Telemetry history in MongoDB ``telemetry``: buckets of readings (``domain/history.py``).

Two layouts, chosen once per database by what the server can do (``ensure_collection``,
``mongo_capabilities``):

- buckets, one document per drone per ``BUCKET_S`` seconds, ``_id`` = ``drone:start``, the
  readings in ``r`` keyed by seq, written by one upsert per bucket (``$set`` of ``r.<seq>``):
  idempotent, and a reading can only ever be in the bucket of its own ``ts``. The embedded
  server, and any MongoDB without time-series collections;
- a native time-series collection (MongoDB 5.0+: ``timeField`` ts, ``metaField`` drone_id),
  one document per reading, written with ``insert_many``. The server buckets them itself; it
  has no unique index there, so a replay may store a reading twice, and the readers here
  return each (drone, seq) once. Not tested here: no real MongoDB runs on the test machine.

Readers fold buckets back into readings, so the API sees the per-reading documents it always
did. Per-reading documents of the layout before buckets are folded into buckets by
:meth:`TelemetryRepo.migrate_readings` (``skyhive drones migrate-history``). Chart averages
(:meth:`TelemetryRepo.downsampled`) are computed by the server where it bins dates right
(``$dateTrunc``), so only the averages travel; else here, from the readings. Reads may go to a
secondary (``mongo.READ_PREFERENCES``), except the migration's and the exact account of what
is stored (``reading_ids``), which must see what was just written.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import DESCENDING, ReadPreference, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, CollectionInvalid

from skyhive.adapters.mongo import Document, collection
from skyhive.adapters.mongo_capabilities import capabilities, epoch_bins
from skyhive.domain.downsample import downsample
from skyhive.domain.history import (
    BUCKET_S,
    READINGS,
    Bucket,
    group_readings,
    in_window,
    unfold,
)
from skyhive.domain.telemetry import InvalidTelemetry, Telemetry, validate_telemetry

DUPLICATE_KEY = 11000
COLLECTION = "telemetry"
OLD_ONLY = ("_id", "location", "unregistered")  # per-reading document fields not in a reading
TIMESERIES = {"timeField": "ts", "metaField": "drone_id", "granularity": "seconds"}


def ensure_collection(db: Database[Document]) -> None:
    """Create ``telemetry`` as a native time-series collection where the server has them;
    else it is made by the first bucket written. An existing collection keeps its layout.
    (Its indexes: ``mongo_indexes``.)"""
    if capabilities(db).timeseries and COLLECTION not in db.list_collection_names():
        with contextlib.suppress(CollectionInvalid):  # made meanwhile by another process
            db.create_collection(COLLECTION, timeseries=TIMESERIES)


def is_timeseries(db: Database[Document]) -> bool:
    info = list(db.list_collections(filter={"name": COLLECTION}))
    return bool(info) and info[0].get("type") == "timeseries"


# Readings per write request. The embedded MongoDB-wire server runs one request at a time:
# the buckets every drone closes together (at each 5 s boundary) in one request held an alert's
# or a delivery's write waiting for half a second; in requests of this size, ~15 ms each.
REQUEST_READINGS = 500


def _requests(buckets: Sequence[Bucket]) -> Iterator[list[Bucket]]:
    """``buckets`` in runs of about ``REQUEST_READINGS`` readings."""
    run: list[Bucket] = []
    readings = 0
    for b in buckets:
        run.append(b)
        readings += len(b.readings)
        if readings >= REQUEST_READINGS:
            yield run
            run, readings = [], 0
    if run:
        yield run


class TelemetryRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._db = db
        self._c: Collection[Document] = collection(db, COLLECTION)
        # What was just written, never a secondary's older copy: the migration reads what it
        # has not moved yet, reading_ids accounts for every reading stored.
        self._primary = self._c.with_options(read_preference=ReadPreference.PRIMARY)
        self._native: bool | None = None  # looked up on first use

    @property
    def native(self) -> bool:
        if self._native is None:
            self._native = is_timeseries(self._db)
        return self._native

    # --- writing ---------------------------------------------------------------------------

    def store(self, buckets: Sequence[Bucket]) -> dict[tuple[str, int], str]:
        if not buckets:
            return {}
        if self.native:
            return self._insert_readings(buckets)
        out: dict[tuple[str, int], str] = {}
        for chunk in _requests(buckets):
            # A refused bucket is written again reading by reading: only what the server
            # refuses on its own is dead-lettered.
            for i in self._upsert(chunk):
                b = chunk[i]
                singles = [b.only(seq) for seq in b.readings]
                for j, why in self._upsert(singles).items():
                    [seq] = singles[j].readings
                    out[(b.drone_id, seq)] = why
        return out

    def _upsert(self, buckets: Sequence[Bucket]) -> dict[int, str]:
        """One upsert per bucket, unordered; index → reason for the refused ones. Two
        archivers creating one bucket at once: the loser's upsert fails on the key and is
        sent again (then it updates)."""
        pending = list(range(len(buckets)))
        refused: dict[int, str] = {}
        for _ in range(3):
            ops = [
                UpdateOne({"_id": buckets[i].id}, buckets[i].update(), upsert=True) for i in pending
            ]
            try:
                self._c.bulk_write(ops, ordered=False)
                return refused
            except BulkWriteError as exc:
                retry = []
                for e in exc.details.get("writeErrors", []):
                    i = pending[int(e["index"])]
                    if e.get("code") == DUPLICATE_KEY:
                        retry.append(i)
                    else:
                        refused[i] = str(e.get("errmsg", "write refused"))
                pending = retry
                if not pending:
                    return refused
        for i in pending:
            refused[i] = "bucket write kept failing on a duplicate key"
        return refused

    def _insert_readings(self, buckets: Sequence[Bucket]) -> dict[tuple[str, int], str]:
        keys = [(b.drone_id, seq) for b in buckets for seq in b.readings]
        docs = [b.reading_document(seq) for b in buckets for seq in b.readings]
        try:
            self._c.insert_many(docs, ordered=False)
            return {}
        except BulkWriteError as exc:
            return {
                keys[int(e["index"])]: str(e.get("errmsg", "write refused"))
                for e in exc.details.get("writeErrors", [])
            }

    # --- reading ---------------------------------------------------------------------------

    def _window(
        self, drone_id: str, since: datetime | None, until: datetime | None
    ) -> tuple[dict[str, Any], str]:
        """The query for the documents that may hold ``drone_id``'s readings in the window,
        and the time field it is on. Buckets are found by their start (a bucket starting
        before ``since`` may hold readings after it); the readings are filtered by time
        after."""
        query: dict[str, Any] = {"drone_id": drone_id}
        window: dict[str, datetime] = {}
        field = "ts" if self.native else "start"
        if since:
            window["$gte"] = since - timedelta(seconds=0 if self.native else BUCKET_S)
        if until:
            window["$lt"] = until
        if window:
            query[field] = window
        return query, field

    def _documents(
        self, drone_id: str, since: datetime | None, until: datetime | None, newest_first: bool
    ) -> Iterator[Document]:
        """The documents of :meth:`_window`, newest first or in no order."""
        query, field = self._window(drone_id, since, until)
        cursor = self._c.find(query, {"location": 0})
        if newest_first:
            cursor = cursor.sort(field, DESCENDING)
        return iter(cursor.batch_size(1000))

    def history(
        self,
        drone_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Document]:
        """Readings in [since, until), newest first, at most ``limit``."""
        found: dict[str, Document] = {}
        oldest: datetime | None = None  # of the readings read so far
        for doc in self._documents(drone_id, since, until, newest_first=True):
            if len(found) >= limit and (
                # buckets never overlap: the next one holds only older readings
                not self.native or (oldest is not None and doc["ts"] < oldest)
            ):
                break
            for r in in_window(unfold(doc), since, until):
                found[r["_id"]] = r
                oldest = r["ts"] if oldest is None else min(oldest, r["ts"])
        return in_window(found.values(), since, until)[:limit]

    def series(
        self, drone_id: str, since: datetime, until: datetime | None, fields: Sequence[str]
    ) -> list[Document]:
        """``ts`` and ``fields`` of every reading in the window, unordered: only what a
        chart needs, for downsampling (``domain/downsample.py``)."""
        readings: list[Document] = []
        for doc in self._documents(drone_id, since, until, newest_first=False):
            readings.extend(unfold(doc))
        return [
            {"ts": r["ts"], **{f: r[f] for f in fields if f in r}}
            for r in in_window(readings, since, until)
        ]

    def downsampled(
        self,
        drone_id: str,
        since: datetime,
        until: datetime | None,
        bucket_s: int,
        fields: Sequence[str],
        limit: int,
    ) -> list[Document]:
        """The newest ``limit`` points of ``domain/downsample.downsample`` over the readings
        in the window: by the server where it bins dates right, else from :meth:`series`."""
        if not capabilities(self._db).date_trunc:
            readings = self.series(drone_id, since, until, fields)
            return downsample(readings, bucket_s, fields)[:limit]
        return list(
            self._c.aggregate(self._averages(drone_id, since, until, bucket_s, fields, limit))
        )

    def _averages(
        self,
        drone_id: str,
        since: datetime,
        until: datetime | None,
        bucket_s: int,
        fields: Sequence[str],
        limit: int,
    ) -> list[Document]:
        """The pipeline of :meth:`downsampled`: the readings in the window (buckets unfolded),
        each (drone, seq) once as the readers count them, then averaged per bin."""
        query, _ = self._window(drone_id, since, until)
        if self.native:
            readings: list[Document] = [{"$match": query}]
        else:
            entry = {"seq": "$r.k", "ts": {"$toDate": "$r.v.ts_ms"}}
            window = {"$gte": since, **({"$lt": until} if until else {})}
            readings = [
                {"$match": query},
                {"$project": {"r": {"$objectToArray": f"${READINGS}"}}},
                {"$unwind": "$r"},
                {"$project": entry | {f: f"$r.v.{f}" for f in fields}},
                {"$match": {"ts": window}},
            ]
        once = {"_id": "$seq", "ts": {"$first": "$ts"}} | {f: {"$first": f"${f}"} for f in fields}
        averages = {"_id": epoch_bins("$ts", bucket_s), "readings": {"$sum": 1}}
        return [
            *readings,
            {"$group": once},
            {"$group": averages | {f: {"$avg": f"${f}"} for f in fields}},
            {"$sort": {"_id": DESCENDING}},
            {"$limit": limit},
            {"$project": {"_id": 0, "ts": "$_id", "readings": 1} | dict.fromkeys(fields, 1)},
        ]

    def readings_of(
        self, drone_ids: Sequence[str], since: datetime, until: datetime
    ) -> dict[str, list[Document]]:
        """Every reading of these drones in [since, until), each once, oldest first (the
        rollups' input). The window is read whole and the drones picked here: a pass sums
        up nearly every drone that flew in it, and the embedded server scans the whole
        collection for a ``$in`` (9 s for an hour of a month's history, 0.7 s for the
        window)."""
        field = "ts" if self.native else "start"
        lower = since - timedelta(seconds=0 if self.native else BUCKET_S)
        query: dict[str, Any] = {field: {"$gte": lower, "$lt": until}}
        if self.native:  # MongoDB proper: its (drone_id, ts) index serves the $in
            query["drone_id"] = {"$in": list(drone_ids)}
        found: dict[str, list[Document]] = {d: [] for d in drone_ids}
        unfolded = (
            r
            for doc in self._c.find(query, {"location": 0}).batch_size(1000)
            if doc["drone_id"] in found
            for r in unfold(doc)
        )
        for r in in_window(unfolded, since, until):
            found[r["drone_id"]].append(r)
        for readings in found.values():
            readings.reverse()
        return found

    def touched(self, since: datetime, until: datetime) -> set[tuple[str, datetime]]:
        """(drone, bucket start) of every stored document in [since, until): what a rebuild
        of the rollups of that window reads. Native readings give their own time."""
        field = "ts" if self.native else "start"
        query = {field: {"$gte": since, "$lt": until}}
        out = set()
        for doc in self._c.find(query, {"drone_id": 1, field: 1}).batch_size(5000):
            at = doc[field]
            if isinstance(at, str):  # the embedded server's date-as-text
                at = datetime.fromisoformat(at)
            out.add((doc["drone_id"], at if at.tzinfo else at.replace(tzinfo=UTC)))
        return out

    def count_for(self, drone_id: str) -> int:
        return len(self.reading_ids(f"^{re.escape(drone_id)}$"))

    def reading_ids(self, drone_regex: str | None = None) -> list[str]:
        """``drone:seq`` of every stored reading (of the drones whose id matches
        ``drone_regex``), duplicates kept: a reading stored twice shows twice."""
        query = {"drone_id": {"$regex": drone_regex}} if drone_regex else {}
        ids: list[str] = []
        for doc in self._primary.find(query, {"location": 0}).batch_size(1000):
            readings = doc.get(READINGS)
            if isinstance(readings, dict):
                ids.extend(f"{doc['drone_id']}:{seq}" for seq in readings)
            else:
                ids.append(f"{doc['drone_id']}:{doc['seq']}")
        return ids

    def readings(self, drone_id: str) -> list[Document]:
        """Every stored reading of one drone, newest first (tests and tools)."""
        return in_window(
            [r for doc in self._documents(drone_id, None, None, False) for r in unfold(doc)],
            None,
            None,
        )

    # --- migration -------------------------------------------------------------------------

    def migrate_readings(self, batch: int = 2000) -> int:
        """Fold per-reading documents (the layout before buckets: a top-level ``seq``) into
        buckets, then delete them; idempotent and resumable (a crash between the two writes
        only writes the same buckets again). Returns how many readings were moved; a
        document that is not a valid reading is left where it is."""
        if self.native:
            return 0
        moved = 0
        skipped: list[Any] = []
        while True:
            query: dict[str, Any] = {"seq": {"$exists": True}}
            if skipped:
                query = {"$and": [query, {"_id": {"$nin": skipped}}]}
            docs = list(self._primary.find(query).limit(batch))
            if not docs:
                return moved
            readings: list[Telemetry] = []
            flagged: dict[str, bool] = {}
            done = []
            for doc in docs:
                fields = {k: v for k, v in doc.items() if k not in OLD_ONLY}
                extra = fields.pop("extra", None) or {}
                try:
                    fields["ts"] = int(unfold(doc)[0]["ts"].timestamp() * 1000)
                    t = validate_telemetry({**extra, **fields})
                except (InvalidTelemetry, KeyError, TypeError, ValueError):
                    skipped.append(doc["_id"])
                    continue
                readings.append(t)
                flagged[t.drone_id] = flagged.get(t.drone_id, False) or bool(
                    doc.get("unregistered")
                )
                done.append(doc["_id"])
            refused = self.store(group_readings(readings, flagged))
            for t in readings:
                if (t.drone_id, t.seq) in refused:
                    skipped.append(t.key)
                    done.remove(t.key)
            if done:
                self._c.delete_many({"_id": {"$in": done}})
            moved += len(done)
