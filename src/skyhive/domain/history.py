"""Telemetry history in buckets: one document per drone per ``BUCKET_S`` seconds of reading
time, its readings in a map keyed by ``seq`` (the MongoDB bucket pattern).

Pure: which bucket a reading belongs to (its own ``ts``, so a replay lands in the same one),
the bucket documents and the idempotent updates that write them, the readings folded back
out of a stored bucket, and the archiver's buffer of readings not yet written.

Why a map and not arrays: ``$set`` of ``r.<seq>`` writes a reading once however often the bus
redelivers it (``$push`` would append it again), and a map cannot hold a seq twice. Why five
seconds and not a minute: on the embedded MongoDB-wire server an update rewrites the whole
document, so a bucket only pays when it is written (nearly) whole, in one upsert; the archiver
holds a bucket's readings until the drone has moved on to the next bucket (or at most
``archiver_hold_s``), and five seconds is what it can hold while history stays within seconds of
live (docs/architecture.md, "History").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from skyhive.domain.telemetry import Telemetry

BUCKET_S = 5  # fixed: a reading must always map to the same bucket (a replay must not move it)
READINGS = "r"  # the bucket's map of readings, seq (as text) → reading


def bucket_start(ts: datetime) -> datetime:
    """The start of the bucket holding a reading of time ``ts`` (aligned to the epoch)."""
    epoch_s = int(ts.timestamp()) // BUCKET_S * BUCKET_S
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def bucket_id(drone_id: str, start: datetime) -> str:
    """``drone:2026-11-23T12:00:05Z``: drone ids hold no ':', so this never collides."""
    return f"{drone_id}:{start.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def reading_entry(t: Telemetry, unregistered: bool = False) -> dict[str, Any]:
    """A reading as its bucket keeps it: without ``drone_id``, ``seq`` (the bucket and the
    map key say them) and GeoJSON (lat/lon say it); its time as epoch milliseconds
    (``ts_ms``), which keeps the precision the embedded server's dates lose."""
    entry: dict[str, Any] = t.model_dump(
        mode="python",
        exclude_none=True,
        exclude={"drone_id", "seq", "ts", *(t.model_extra or ())},
    )
    entry["ts_ms"] = t.ts_ms
    if t.model_extra:
        entry["extra"] = t.model_extra
    if unregistered:
        entry["unregistered"] = True  # ingested all the same, but flagged
    return entry


@dataclass(slots=True)
class Bucket:
    """Readings of one drone within one bucket span, to be written together."""

    drone_id: str
    start: datetime
    readings: dict[int, Telemetry] = field(default_factory=dict)  # seq → reading
    unregistered: set[int] = field(default_factory=set)  # seqs of flagged readings

    @property
    def id(self) -> str:
        return bucket_id(self.drone_id, self.start)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=BUCKET_S)

    def add(self, t: Telemetry, unregistered: bool = False) -> None:
        self.readings[t.seq] = t
        if unregistered:
            self.unregistered.add(t.seq)
        else:
            self.unregistered.discard(t.seq)

    def only(self, seq: int) -> Bucket:
        """The same bucket with one of its readings (to write a refused bucket reading by
        reading)."""
        one = Bucket(self.drone_id, self.start, {seq: self.readings[seq]})
        if seq in self.unregistered:
            one.unregistered.add(seq)
        return one

    def update(self) -> dict[str, Any]:
        """The upsert that writes this bucket: ``$set`` of each reading by seq (a replay
        sets the same values again), the bucket's fixed fields on insert only."""
        sets: dict[str, Any] = {
            f"{READINGS}.{seq}": reading_entry(t, seq in self.unregistered)
            for seq, t in self.readings.items()
        }
        if self.unregistered:
            sets["unregistered"] = True  # some reading in it came from an unregistered drone
        return {
            "$set": sets,
            "$setOnInsert": {"drone_id": self.drone_id, "start": self.start, "end": self.end},
        }

    def reading_document(self, seq: int) -> dict[str, Any]:
        """One reading as a document of its own (a native time-series collection's shape)."""
        t = self.readings[seq]
        doc = {"drone_id": t.drone_id, "seq": seq, "ts": t.ts, **reading_entry(t)}
        if seq in self.unregistered:
            doc["unregistered"] = True
        return doc


def group_readings(
    readings: Iterable[Telemetry], unregistered: Mapping[str, bool] | None = None
) -> list[Bucket]:
    """Readings into their buckets (a seq given twice: the last one wins, as a replay's
    ``$set`` would); ``unregistered`` flags drones not in the registry."""
    buckets: dict[tuple[str, datetime], Bucket] = {}
    for t in readings:
        start = bucket_start(t.ts)
        b = buckets.get((t.drone_id, start))
        if b is None:
            b = buckets[(t.drone_id, start)] = Bucket(t.drone_id, start)
        b.add(t, bool(unregistered and unregistered.get(t.drone_id)))
    return list(buckets.values())


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))  # the embedded server's date-as-text
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def unfold(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The readings of a stored document, each as the per-reading document history had
    before buckets: ``_id`` (drone:seq), ``drone_id``, ``seq``, ``ts`` (datetime, to the
    millisecond), the reading's fields, ``extra``, ``unregistered``. A per-reading document
    (older layout, or a native time-series collection) comes back as one reading."""
    readings = doc.get(READINGS)
    if not isinstance(readings, Mapping):
        one = {k: v for k, v in doc.items() if k not in ("location", "ts_ms")}
        one["_id"] = f"{doc['drone_id']}:{doc['seq']}"
        ts_ms = doc.get("ts_ms")
        one["ts"] = (
            datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
            if isinstance(ts_ms, int)
            else _as_datetime(doc["ts"])
        )
        return [one]
    drone_id = doc["drone_id"]
    out = []
    for key, entry in readings.items():
        seq = int(key)
        fields = {k: v for k, v in entry.items() if k != "ts_ms"}
        out.append(
            {
                "_id": f"{drone_id}:{seq}",
                "drone_id": drone_id,
                "seq": seq,
                "ts": datetime.fromtimestamp(entry["ts_ms"] / 1000, tz=UTC),
                **fields,
            }
        )
    return out


def in_window(
    readings: Iterable[dict[str, Any]], since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    """The readings with ``since <= ts < until``, newest first (then highest seq), one per
    ``_id`` (a native time-series collection may hold a replayed reading twice)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in readings:
        if (since is None or r["ts"] >= since) and (until is None or r["ts"] < until):
            seen[r["_id"]] = r
    return sorted(seen.values(), key=lambda r: (r["ts"], r["seq"]), reverse=True)


@dataclass(slots=True)
class _Held:
    bucket: Bucket
    since: float  # monotonic time its first reading was held
    ids: list[str] = field(default_factory=list)  # bus entries to acknowledge once written


class HeldBuckets:
    """The archiver's readings not yet written, by bucket, with the bus entries each one
    came in. A bucket is due when its drone has a reading in a later bucket (it is, barring
    a straggler, complete), once held ``hold_s``, or when everything is flushed."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}
        # drone → start of the latest bucket it has had a reading in (one entry per drone)
        self._latest: dict[str, datetime] = {}
        self._ids: set[str] = set()  # every entry held, so a redelivery is counted once
        self.readings = 0

    def __len__(self) -> int:
        return len(self._held)

    def holds(self, entry_id: str) -> bool:
        return entry_id in self._ids

    def add(self, t: Telemetry, entry_id: str, unregistered: bool, now: float) -> None:
        start = bucket_start(t.ts)
        key = bucket_id(t.drone_id, start)
        h = self._held.get(key)
        if h is None:
            h = self._held[key] = _Held(Bucket(t.drone_id, start), now)
        if t.seq not in h.bucket.readings:
            self.readings += 1
        h.bucket.add(t, unregistered)
        h.ids.append(entry_id)
        self._ids.add(entry_id)
        if start > self._latest.get(t.drone_id, start - timedelta(seconds=1)):
            self._latest[t.drone_id] = start

    def due(self, now: float, hold_s: float, everything: bool = False) -> list[str]:
        """Keys of the buckets to write now."""
        if everything:
            return list(self._held)
        return [
            key
            for key, h in self._held.items()
            if now - h.since >= hold_s or self._latest[h.bucket.drone_id] > h.bucket.start
        ]

    def held_since(self, before: float) -> list[str]:
        """Entries held since before ``before`` (to claim them again on the bus)."""
        return [i for h in self._held.values() if h.since < before for i in h.ids]

    def peek(self, keys: Sequence[str]) -> tuple[list[Bucket], list[str]]:
        """The buckets of ``keys`` and their bus entries (still held until :meth:`drop`)."""
        held = [self._held[k] for k in keys]
        return [h.bucket for h in held], [i for h in held for i in h.ids]

    def drop(self, keys: Sequence[str]) -> None:
        """Forget buckets once written."""
        for key in keys:
            h = self._held.pop(key)
            self.readings -= len(h.bucket.readings)
            self._ids.difference_update(h.ids)
