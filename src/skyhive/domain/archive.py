"""The columnar archive's rules: which days may be exported, the tables and their columns
(schema version 1), and the rows each table holds, flattened from the domain's records.

Pure: the Parquet files are ``adapters/parquet_archive.py``, the MongoDB reads
``adapters/archive_source.py``, the export itself ``services/archive_export.py``. A day is
exported whole, every table at once; a day's deliveries and alerts are those created or opened
that day (UTC), and ``drones`` and ``stations`` are the registry as it was at the export.

Column types are named here once (``COLUMNS``) and mapped to Arrow and DuckDB types by the
adapters: a change of a column is a new schema version (a new ``v<N>`` folder), never an
edit of ``v1``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from skyhive.domain.alerts import Alert
from skyhive.domain.deliveries import Delivery
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.stations import Station

SCHEMA_VERSION = 1
VERSION_DIR = f"v{SCHEMA_VERSION}"
PARTITION = "date"  # the hive partition column: <table>/date=YYYY-MM-DD/

# History is written seconds after the readings (the archiver holds a bucket at most 5 s, the
# bus may lag); a day is exported only once it has been over this long.
CLOSE_GRACE = timedelta(minutes=10)

# Column name → logical type: string, int64, float64, bool, timestamp (UTC, milliseconds),
# decimal (money: 12 digits, 2 after the point).
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "telemetry": (
        ("drone_id", "string"),
        ("seq", "int64"),
        ("ts", "timestamp"),
        ("ts_ms", "int64"),  # the same instant as epoch milliseconds: engine-neutral arithmetic
        ("battery_pct", "float64"),
        ("lat", "float64"),
        ("lon", "float64"),
        ("alt_m", "float64"),
        ("speed_mps", "float64"),
        ("heading_deg", "float64"),
        ("status", "string"),
        ("emergency", "bool"),
        ("delivery_id", "string"),
        ("payload_kg", "float64"),
        ("unregistered", "bool"),
        ("extra", "string"),  # unknown fields, JSON with sorted keys
    ),
    "deliveries": (
        ("delivery_id", "string"),
        ("order_id", "string"),
        ("customer_id", "string"),
        ("pickup_station", "string"),
        ("return_station", "string"),
        ("drone_id", "string"),
        ("status", "string"),  # as it was at the export
        ("package_kg", "float64"),
        ("package_size", "string"),
        ("distance_km", "float64"),
        ("created_at", "timestamp"),
        ("assigned_at", "timestamp"),  # the first assignment
        ("picked_up_at", "timestamp"),
        ("delivered_at", "timestamp"),
        ("ended_at", "timestamp"),  # failed or cancelled
        ("promised_eta", "timestamp"),  # the ETA the dispatcher gave at assignment
        ("wait_s", "float64"),  # order → first assignment
        ("delivery_s", "float64"),  # order → drop
        ("redispatches", "int64"),  # times it went back to pending
        ("reason", "string"),  # why it failed or was cancelled, without ids and figures
        ("note", "string"),  # the last timeline note, as written
        ("price_estimate", "decimal"),
        ("price_final", "decimal"),
        ("currency", "string"),
    ),
    "alerts": (
        ("alert_id", "string"),
        ("drone_id", "string"),
        ("type", "string"),
        ("severity", "string"),
        ("state", "string"),
        ("opened_at", "timestamp"),
        ("last_seen", "timestamp"),
        ("acknowledged_at", "timestamp"),
        ("resolved_at", "timestamp"),
        ("count", "int64"),
    ),
    "drones": (
        ("drone_id", "string"),
        ("model", "string"),
        ("home_station", "string"),
        ("status", "string"),
        ("max_payload_kg", "float64"),
        ("battery_capacity_wh", "float64"),
        ("cruise_speed_mps", "float64"),
        ("consumption_wh_per_km", "float64"),
    ),
    "stations": (
        ("code", "string"),
        ("name", "string"),
        ("lat", "float64"),
        ("lon", "float64"),
        ("pads", "int64"),
        ("chargers", "int64"),
    ),
}
TABLES: tuple[str, ...] = tuple(COLUMNS)
# Each table's row order in its file: the same records always make the same file.
ORDER: dict[str, tuple[str, ...]] = {
    "telemetry": ("drone_id", "seq"),
    "deliveries": ("delivery_id",),
    "alerts": ("alert_id",),
    "drones": ("drone_id",),
    "stations": ("code",),
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class NotClosed(ValueError):
    """A day that may still receive history."""


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a day: use YYYY-MM-DD") from None


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of ``day``, UTC."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def last_closed_day(now: datetime) -> date:
    """The latest day that :func:`check_closed` accepts at ``now``."""
    return (now - CLOSE_GRACE).date() - timedelta(days=1)


def check_closed(day: date, now: datetime) -> None:
    if day > last_closed_day(now):
        _, end = day_bounds(day)
        raise NotClosed(
            f"{day} is not closed yet: it can be exported from {(end + CLOSE_GRACE):%Y-%m-%d %H:%M} "
            "UTC, once no more of its history can arrive"
        )


def days_between(first: date, last: date) -> list[date]:
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def first_kept_day(now: datetime, raw_days: int) -> date:
    """The oldest day none of whose readings retention has removed at ``now`` (it removes a
    bucket ``raw_days`` after the bucket's start)."""
    return (now - timedelta(days=raw_days)).date() + timedelta(days=1)


def retained_days(now: datetime, raw_days: int) -> list[date]:
    """The closed days whose raw readings retention still keeps whole: those the nightly
    export must write before they are removed."""
    first, last = first_kept_day(now, raw_days), last_closed_day(now)
    return days_between(first, last) if first <= last else []


def epoch_ms(at: datetime) -> int:
    """Exact epoch milliseconds (floor), without a float on the way."""
    return (_utc(at) - _EPOCH) // _MS


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _instant(value: Any) -> datetime | None:
    """A stored time as a UTC datetime: a datetime, or the text the embedded server keeps."""
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, str):
        try:
            return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


# --- rows -----------------------------------------------------------------------------------

_READING_FIELDS = (
    "battery_pct",
    "lat",
    "lon",
    "alt_m",
    "speed_mps",
    "heading_deg",
    "status",
    "delivery_id",
    "payload_kg",
)


def reading_row(reading: Mapping[str, Any]) -> dict[str, Any]:
    """A telemetry row from a reading as ``domain/history.unfold`` returns it."""
    ts = _utc(reading["ts"])
    extra = reading.get("extra")
    return {
        "drone_id": reading["drone_id"],
        "seq": int(reading["seq"]),
        "ts": ts,
        "ts_ms": epoch_ms(ts),
        **{name: reading.get(name) for name in _READING_FIELDS},
        "emergency": bool(reading.get("emergency", False)),
        "unregistered": bool(reading.get("unregistered", False)),
        "extra": json.dumps(extra, sort_keys=True, default=str) if extra else None,
    }


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def reason_kind(note: str, drone_id: str | None) -> str:
    """A failure or cancellation note as a reason to count: the drone's id and the figures
    taken out ("d-7 silent for 130 s with the package on board" → "drone silent for N s with
    the package on board"), so the same cause groups together."""
    text = note.replace(drone_id, "drone") if drone_id else note
    return _NUMBER.sub("N", text).strip()


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    return (later - earlier).total_seconds() if later and earlier else None


def delivery_row(d: Delivery) -> dict[str, Any]:
    """A deliveries row: the record flattened to what the KPIs need (the times of its steps,
    the ETA given at assignment, why it ended)."""
    first: dict[str, datetime] = {}
    pending = 0
    for step in d.timeline:
        at = _utc(step.at)
        first.setdefault(step.status, at)
        pending += step.status == "pending"
    created = _utc(d.created_at)
    assigned = first.get("assigned")
    delivered = _instant(d.delivered_at) or first.get("delivered")
    ended = first.get(d.status) if d.status in ("failed", "cancelled") else None
    note = d.timeline[-1].note if d.timeline else None
    drone = d.drone_id or (d.dispatch or {}).get("drone_id")
    return {
        "delivery_id": d.id,
        "order_id": d.order_id,
        "customer_id": d.customer_id,
        "pickup_station": d.pickup_station,
        "return_station": d.return_station,
        "drone_id": d.drone_id,
        "status": d.status,
        "package_kg": d.package.weight_kg,
        "package_size": d.package.size,
        "distance_km": d.distance_km,
        "created_at": created,
        "assigned_at": assigned,
        "picked_up_at": first.get("picked_up"),
        "delivered_at": delivered,
        "ended_at": ended,
        "promised_eta": _instant((d.dispatch or {}).get("eta")),
        "wait_s": _seconds(assigned, created),
        "delivery_s": d.delivery_s if d.delivery_s is not None else _seconds(delivered, created),
        "redispatches": max(0, pending - 1),
        "reason": reason_kind(note, drone) if ended and note else None,
        "note": note,
        "price_estimate": d.price_estimate,
        "price_final": d.price_final,
        "currency": d.currency,
    }


def alert_row(a: Alert) -> dict[str, Any]:
    return {
        "alert_id": a.id,
        "drone_id": a.drone_id,
        "type": a.type,
        "severity": a.severity,
        "state": a.state,
        "opened_at": _utc(a.opened_at),
        "last_seen": _instant(a.last_seen),
        "acknowledged_at": _instant(a.acknowledged_at),
        "resolved_at": _instant(a.resolved_at),
        "count": a.count,
    }


def drone_row(spec: DroneSpec) -> dict[str, Any]:
    return spec.model_dump()


def station_row(s: Station) -> dict[str, Any]:
    return {
        "code": s.code,
        "name": s.name,
        "lat": s.lat,
        "lon": s.lon,
        "pads": s.pads,
        "chargers": s.chargers,
    }


def ordered(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ORDER[table]
    return sorted(rows, key=lambda r: tuple(r[k] for k in keys))


# --- the manifest ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableFile:
    """One table's file of one day, as written (or read back)."""

    table: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """What the manifest (MongoDB ``archive_exports``, ``_id`` = the day) says of a day.
    ``verified``: the readings MongoDB holds for the day, counted after the export, are
    exactly the telemetry file's rows, read back from the file."""

    day: date
    exported_at: datetime
    tables: dict[str, TableFile]
    readings_in_mongo: int
    verified: bool
    open_deliveries: int = 0  # deliveries of the day not yet ended at the export
    schema_version: int = SCHEMA_VERSION
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def rows(self) -> int:
        return self.tables["telemetry"].rows if "telemetry" in self.tables else 0
