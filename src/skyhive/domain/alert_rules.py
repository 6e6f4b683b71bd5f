"""Alert rules over telemetry: which conditions a reading shows, and what that does to the
one open alert per (drone, type)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from skyhive.domain.telemetry import Telemetry

Severity = Literal["warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Thresholds:
    low_battery_warning_pct: float = 25.0
    low_battery_critical_pct: float = 10.0


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule firing on one reading."""

    drone_id: str
    type: str
    severity: Severity
    ts: datetime
    details: dict[str, Any]


def evaluate(t: Telemetry, th: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    if t.is_emergency:
        found.append(Condition(t.drone_id, "emergency", "critical", t.ts, _where(t)))
    if t.battery_pct < th.low_battery_critical_pct:
        found.append(Condition(t.drone_id, "low_battery", "critical", t.ts, _where(t)))
    elif t.battery_pct < th.low_battery_warning_pct:
        found.append(Condition(t.drone_id, "low_battery", "warning", t.ts, _where(t)))
    return found


def _where(t: Telemetry) -> dict[str, Any]:
    return {
        "battery_pct": t.battery_pct,
        "lat": t.lat,
        "lon": t.lon,
        "seq": t.seq,
        "status": t.status,
    }


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """What the processor remembers (in Redis) about a drone's open alert of one type."""

    alert_id: str
    severity: Severity

    def encode(self) -> str:
        return f"{self.alert_id}|{self.severity}"

    @staticmethod
    def decode(raw: str) -> OpenAlert:
        alert_id, _, severity = raw.rpartition("|")
        return OpenAlert(alert_id, "critical" if severity == "critical" else "warning")


@dataclass(slots=True)
class AlertChange:
    """The net effect of a batch of conditions on one (drone, type) alert."""

    alert_id: str
    drone_id: str
    type: str
    severity: Severity
    opened: bool  # a new alert
    escalated: bool  # severity rose
    first_ts: datetime
    last_ts: datetime
    count: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def notify(self) -> bool:
        return self.opened or self.escalated


def alert_id_for(c: Condition) -> str:
    """Deterministic id, so a replayed batch upserts the same alert rather than a new one."""
    return f"{c.drone_id}:{c.type}:{int(c.ts.timestamp() * 1000)}"


def fold(
    conditions: list[Condition], current: dict[tuple[str, str], OpenAlert]
) -> list[AlertChange]:
    """Combine a batch's conditions (in event-time order) with the open alerts.

    One open alert per (drone, type): the first condition opens it, repeats count, a higher
    severity escalates it. Severity never drops while it stays open.
    """
    changes: dict[tuple[str, str], AlertChange] = {}
    for c in sorted(conditions, key=lambda c: c.ts):
        key = (c.drone_id, c.type)
        ch = changes.get(key)
        if ch is None:
            prev = current.get(key)
            if prev is None:
                ch = AlertChange(
                    alert_id_for(c), c.drone_id, c.type, c.severity, True, False, c.ts, c.ts, 0
                )
            else:
                ch = AlertChange(
                    prev.alert_id, c.drone_id, c.type, prev.severity, False, False, c.ts, c.ts, 0
                )
            changes[key] = ch
        if SEVERITY_RANK[c.severity] > SEVERITY_RANK[ch.severity]:
            ch.severity = c.severity
            ch.escalated = not ch.opened
        ch.count += 1
        ch.last_ts = max(ch.last_ts, c.ts)
        ch.details = c.details
    return list(changes.values())
