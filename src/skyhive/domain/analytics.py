"""The analytics API's rules (``/api/v1/analytics/...``): the window asked for, which rollups
answer it, and the shaping of the fleet KPIs into answers.

Deliveries and alerts are answered by the KPI SQL of ``domain/kpis.py`` itself (the one
definition, also run on the archive by DuckDB and Spark), over the window's records loaded
into an in-memory DuckDB; the two station and status totals below are written in the same
subset. Utilisation and energy come from the drone rollups (``domain/rollups.py``) instead
of raw readings, which are too many to read per request; the rollups count steps between
readings by the rules the archive's KPIs count them (time to the earlier reading's status,
in the period of the later one; distance and flight energy on flying steps).

A window is answered by whole minutes: the closed hours wholly inside it from the hour
rollups, the minutes at its edges and of the hours not settled yet from the minute rollups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from skyhive.domain.fleet import DroneSpec
from skyhive.domain.kpis import ALL, Kpi
from skyhive.domain.rollups import FLYING

DEFAULT_WINDOW = timedelta(days=7)
MAX_WINDOW = timedelta(days=92)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
# An hour is read from its hour rollup once it ended this long ago (the archiver sums an
# hour up seconds after it closes, and while it is open only every few minutes).
HOUR_SETTLED = timedelta(minutes=10)
GROUND = {"idle": "idle_s", "charging": "charging_s"}
TIMES = ("flight_s", "idle_s", "charging_s", "other_s")


class WindowError(ValueError):
    """A window the API answers 400 to; ``field`` names the parameter at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Span:
    """``[since, until)``, UTC."""

    since: datetime
    until: datetime

    def days(self) -> list[date]:
        """The UTC days the span touches."""
        first, last = self.since.date(), (self.until - timedelta(microseconds=1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until}


def window(since: datetime | None, until: datetime | None, now: datetime) -> Span:
    """The window asked for: ``until`` defaults to now, ``since`` to a week before ``until``;
    empty, inverted or longer than ``MAX_WINDOW``: WindowError."""
    until = (until or now).astimezone(UTC)
    since = (since or until - DEFAULT_WINDOW).astimezone(UTC)
    if since >= until:
        raise WindowError("since must be before until", "since")
    if until - since > MAX_WINDOW:
        raise WindowError(
            f"the window is at most {MAX_WINDOW.days} days; this one is "
            f"{(until - since) / timedelta(days=1):.1f}",
            "since",
        )
    return Span(since, until)


def _floor(at: datetime, unit: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return at - (at - epoch) % unit


def _ceil(at: datetime, unit: timedelta) -> datetime:
    floor = _floor(at, unit)
    return floor if floor == at else floor + unit


@dataclass(frozen=True, slots=True)
class RollupReads:
    """What answers a window from the rollups: the whole minutes inside it (``covered``),
    as hours ``[start, end)`` of the hour rollups and spans of minute rollups."""

    covered: Span | None
    hours: Span | None
    minutes: tuple[Span, ...]


def rollup_reads(span: Span, now: datetime) -> RollupReads:
    lo, hi = _ceil(span.since, MINUTE), _floor(span.until, MINUTE)
    if lo >= hi:
        return RollupReads(None, None, ())
    first = _ceil(lo, HOUR)
    last = min(_floor(hi, HOUR), _floor(now - HOUR_SETTLED, HOUR))
    if first >= last:
        return RollupReads(Span(lo, hi), None, (Span(lo, hi),))
    edges = tuple(Span(a, b) for a, b in ((lo, first), (last, hi)) if a < b)
    return RollupReads(Span(lo, hi), Span(first, last), edges)


# --- utilisation and energy, from rollups ------------------------------------------------------


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _times(status_s: Mapping[str, float]) -> dict[str, float]:
    out = dict.fromkeys(TIMES, 0.0)
    for status, s in status_s.items():
        key = "flight_s" if status in FLYING else GROUND.get(status, "other_s")
        out[key] += float(s)
    return out


def _with_shares(row: dict[str, Any]) -> dict[str, Any]:
    observed = sum(row[k] for k in TIMES)
    row["observed_s"] = observed
    for kind in ("flight", "idle", "charging"):
        row[f"{kind}_share"] = _share(row[f"{kind}_s"], observed)
    return row


def utilisation(
    periods: Iterable[Mapping[str, Any]], specs: Mapping[str, DroneSpec], days: Sequence[date]
) -> dict[str, list[dict[str, Any]]]:
    """Seconds flying (in flight, returning, emergency), idle, charging and otherwise (a
    status not reported) per drone and UTC day, with their shares of the observed time; and
    the fleet's per day, every day of ``days`` (zero where none)."""
    per: dict[tuple[date, str], dict[str, float]] = {}
    for p in periods:
        key = (p["start"].astimezone(UTC).date(), str(p["drone_id"]))
        row = per.setdefault(key, dict.fromkeys(TIMES, 0.0))
        for k, v in _times(p.get("status_s") or {}).items():
            row[k] += v
    drones = []
    fleet: dict[date, dict[str, Any]] = {
        d: {"day": d, "drones": 0, **dict.fromkeys(TIMES, 0.0)} for d in days
    }
    for (day, drone_id), times in sorted(per.items()):
        spec = specs.get(drone_id)
        drones.append(
            _with_shares(
                {
                    "day": day,
                    "drone_id": drone_id,
                    "model": spec.model if spec else None,
                    "home_station": spec.home_station if spec else None,
                    **times,
                }
            )
        )
        total = fleet.setdefault(day, {"day": day, "drones": 0, **dict.fromkeys(TIMES, 0.0)})
        total["drones"] += 1
        for k, v in times.items():
            total[k] += v
    return {"fleet": [_with_shares(fleet[d]) for d in sorted(fleet)], "drones": drones}


def energy_by_model(
    periods: Iterable[Mapping[str, Any]], specs: Mapping[str, DroneSpec]
) -> list[dict[str, Any]]:
    """Wh per km flown by drone model: the battery used in flight (percent of the registry's
    capacity) over the distance flown, with the model's rated consumption beside it. Drones
    not in the registry have no model and no capacity: left out, as the archive KPI's join
    leaves them."""
    models: dict[str, dict[str, Any]] = {}
    for p in periods:
        spec = specs.get(str(p["drone_id"]))
        if spec is None:
            continue
        m = models.setdefault(spec.model, {"drones": set(), "m": 0.0, "wh": 0.0})
        m["drones"].add(spec.drone_id)
        m["m"] += float(p.get("distance_m") or 0.0)
        m["wh"] += float(p.get("flight_used_pct") or 0.0) / 100.0 * spec.battery_capacity_wh
    out = []
    for model, m in sorted(models.items()):
        km = m["m"] / 1000.0
        rated = [specs[d].consumption_wh_per_km for d in m["drones"]]
        out.append(
            {
                "model": model,
                "drones": len(m["drones"]),
                "km": km,
                "energy_wh": m["wh"],
                "wh_per_km": m["wh"] / km if km > 0 else None,
                "rated_wh_per_km": sum(rated) / len(rated),
            }
        )
    return out


# --- the KPI answers, shaped -------------------------------------------------------------------

# Per pickup station over the window: what the bar chart compares (the hours are STATION_HOURS).
STATION_TOTALS = Kpi(
    "station_totals",
    "Per pickup station: orders, pickups, waiting before assignment",
    """
WITH pads AS (
    SELECT code, MAX(pads) AS pads FROM stations GROUP BY code
)
SELECT d.pickup_station AS station,
       COUNT(*) AS orders,
       COUNT(d.picked_up_at) AS pickups,
       COUNT(d.wait_s) AS assigned,
       MAX(p.pads) AS pads,
       AVG(d.wait_s) AS mean_wait_s,
       MAX(d.wait_s) AS max_wait_s
FROM deliveries d LEFT JOIN pads p ON p.code = d.pickup_station
GROUP BY d.pickup_station
ORDER BY station
""",
)

STATUS_COUNTS = Kpi(
    "status_counts",
    "Orders by their status now",
    """
SELECT status, COUNT(*) AS deliveries FROM deliveries GROUP BY status ORDER BY status
""",
)


def hour_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """STATION_HOURS rows with their day and hour as one time (``2026-11-23T09:00:00Z``)."""
    out = []
    for r in rows:
        row = {k: v for k, v in r.items() if k not in ("day", "hour")}
        out.append({"hour": f"{r['day']}T{int(r['hour']):02d}:00:00Z", **row})
    return out


def station_totals(
    totals: Iterable[Mapping[str, Any]], hours: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Each station's totals with its busiest hour's pickups per pad."""
    peak: dict[str, float] = {}
    for h in hours:
        per_pad = h.get("pickups_per_pad")
        if per_pad is not None:
            peak[h["station"]] = max(peak.get(h["station"], 0.0), float(per_pad))
    return [{**t, "peak_pickups_per_pad": peak.get(t["station"])} for t in totals]


def split_overall(
    rows: Iterable[Mapping[str, Any]], empty: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The all-stations row (``empty`` when there is none) and the per-station rows."""
    overall: dict[str, Any] = dict(empty)
    stations = []
    for r in rows:
        if r["station"] == ALL:
            overall = {k: v for k, v in r.items() if k != "station"}
        else:
            stations.append(dict(r))
    return overall, stations


def alerts_by_type(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """ALERTS rows summed over stations, most alerts first."""
    types: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = types.setdefault(r["type"], {"type": r["type"], "alerts": 0, "critical": 0})
        t["alerts"] += int(r["alerts"])
        t["critical"] += int(r["critical"])
    return sorted(types.values(), key=lambda t: (-t["alerts"], t["type"]))
