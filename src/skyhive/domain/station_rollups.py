"""Station rollups: per pickup station and hour, what its orders did (created, assigned,
picked up, delivered, failed, cancelled) and how long they waited for a drone.

Each event counts in the hour it happened, at the delivery's pickup station. An hour's
figures are always recomputed whole from the delivery records, never incremented, so a pass
run twice, or over an hour already written, writes the same figures. The wait is order to
first assignment, counted in the hour the wait ended (an order still waiting has no wait
yet; a re-dispatch, assigned back to pending, is counted apart). Sums and counts are kept
beside the means so that hours merge into days or stations exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

HOUR = timedelta(hours=1)


class StationRollupsConfig(BaseModel):
    """When the archiver recomputes station hours (``SKYHIVE_STATION_ROLLUPS__INTERVAL_S``):
    every ``interval_s``, the current and previous hour and any hour since its last pass; on
    its first pass after a start, the last ``catchup_h`` hours (what a stopped archiver
    missed). Older hours: ``StationRollups.rebuild``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_s: float = Field(default=60.0, gt=0, le=3600)
    catchup_h: int = Field(default=24, ge=1, le=24 * 90)


@dataclass(frozen=True, slots=True)
class DeliveryTrace:
    """What a station rollup needs of a delivery: where and when it was ordered, and its
    timeline as (status, at) in order."""

    station_id: str
    created_at: datetime
    steps: tuple[tuple[str, datetime], ...]


def hour_floor(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(at: datetime) -> datetime:
    floor = hour_floor(at)
    return floor if floor == at else floor + HOUR


def hour_key(station_id: str, hour: datetime) -> str:
    """A station hour's id: ``12TH:2026-10-12T15Z`` (sorts by station, then hour)."""
    return f"{station_id}:{hour:%Y-%m-%dT%H}Z"


def hours_between(since: datetime, until: datetime) -> list[datetime]:
    """The hours starting in ``[since, until)``, both on hour boundaries."""
    return [since + i * HOUR for i in range(int((until - since) / HOUR))]


@dataclass(slots=True)
class StationHour:
    """One station's hour. ``assignments`` is also the count of waits (``wait_sum_s``), and
    ``deliveries`` that of ``delivery_time_sum_s`` (order to drop)."""

    station_id: str
    hour: datetime
    orders: int = 0
    assignments: int = 0
    redispatches: int = 0
    pickups: int = 0
    deliveries: int = 0
    failures: int = 0
    cancellations: int = 0
    wait_sum_s: float = 0.0
    wait_max_s: float = 0.0
    delivery_time_sum_s: float = 0.0

    @property
    def key(self) -> str:
        return hour_key(self.station_id, self.hour)

    @property
    def mean_wait_s(self) -> float | None:
        return self.wait_sum_s / self.assignments if self.assignments else None

    def figures(self) -> dict[str, Any]:
        """Every figure (not the station or hour), the mean included."""
        out = asdict(self)
        del out["station_id"], out["hour"]
        return out | {"mean_wait_s": self.mean_wait_s}


# A timeline status → the counter its step adds to (the first "assigned" is the wait's end).
_COUNTED = {
    "picked_up": "pickups",
    "delivered": "deliveries",
    "failed": "failures",
    "cancelled": "cancellations",
}


def station_hours(
    traces: Iterable[DeliveryTrace], since: datetime, until: datetime
) -> list[StationHour]:
    """The figures of every station hour in ``[since, until)`` (widened to whole hours) in
    which something happened, by station then hour. Events outside the window are left out,
    so a trace may be passed for any hour it touches."""
    since, until = hour_floor(since), hour_ceil(until)
    out: dict[tuple[str, datetime], StationHour] = {}

    def at(station: str, when: datetime) -> StationHour | None:
        if not since <= when < until:
            return None
        hour = hour_floor(when)
        figure = out.get((station, hour))
        if figure is None:
            figure = out[(station, hour)] = StationHour(station, hour)
        return figure

    for trace in traces:
        station, created = trace.station_id, trace.created_at
        if (h := at(station, created)) is not None:
            h.orders += 1
        assigned = False
        previous = ""
        for status, when in trace.steps:
            h = at(station, when)
            if status == "assigned" and not assigned:
                assigned = True
                if h is not None:
                    wait = (when - created).total_seconds()
                    h.assignments += 1
                    h.wait_sum_s += wait
                    h.wait_max_s = max(h.wait_max_s, wait)
            elif status == "pending" and previous == "assigned":
                if h is not None:
                    h.redispatches += 1
            elif status in _COUNTED and h is not None:
                name = _COUNTED[status]
                setattr(h, name, getattr(h, name) + 1)
                if status == "delivered":
                    h.delivery_time_sum_s += (when - created).total_seconds()
            previous = status
    return [out[k] for k in sorted(out)]
