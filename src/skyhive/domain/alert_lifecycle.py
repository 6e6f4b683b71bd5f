"""The alert lifecycle: ``open → acknowledged → resolved``, one active alert per drone and type.

:func:`fold` applies a batch of findings (in event-time order per drone) to the active alerts:
the first finding of a condition opens an alert, repeats count and move its severity up
(escalated) or down (de-escalated), and a finding that the condition no longer holds resolves
it when its type resolves by itself. A critical alert that resolves by itself while nobody has
acknowledged it becomes ``resolved_unacknowledged`` (ThingsBoard's CLEARED_UNACK): the
condition is gone, but a person must still see it; their acknowledgement makes it ``resolved``.
After a resolution the next finding opens a new alert.
A finding older than the reading that opened the active alert changes nothing: another lane
(the urgent one) judged a newer reading meanwhile, and history must not move an alert back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from skyhive.domain.alert_config import SEVERITY_RANK, Severity
from skyhive.domain.alert_rules import Finding

ACTIVE_STATES = ("open", "acknowledged")  # the condition holds: remembered in Redis
UNACKNOWLEDGED = "resolved_unacknowledged"  # gone by itself, critical, nobody looked yet


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """What is remembered (in Redis) of a drone's active alert of one type."""

    alert_id: str
    severity: Severity
    state: str = "open"

    def encode(self) -> str:
        return f"{self.alert_id}|{self.severity}|{self.state}"

    @staticmethod
    def decode(raw: str) -> ActiveAlert:
        parts = raw.rsplit("|", 2)
        if len(parts) == 3 and parts[2] in ACTIVE_STATES:
            alert_id, severity, state = parts
        else:  # written by an older version: "id|severity"
            alert_id, _, severity = raw.rpartition("|")
            state = "open"
        return ActiveAlert(alert_id, "critical" if severity == "critical" else "warning", state)


@dataclass(slots=True)
class AlertUpdate:
    """The net effect of a batch on one alert document, and what happened to it, in order."""

    alert_id: str
    drone_id: str
    type: str
    severity: Severity
    first_ts: datetime
    last_ts: datetime
    count: int = 0
    opened: bool = False
    resolved_at: datetime | None = None
    resolved_state: str = "resolved"  # or UNACKNOWLEDGED (see resolved_state())
    grounding: bool = False  # it takes the drone out of dispatch (set by the alert engine)
    details: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)  # opened, escalated, deescalated, resolved
    action: dict[str, Any] | None = None  # an automatic action taken, recorded with it


def alert_id_for(drone_id: str, alert_type: str, ts: datetime) -> str:
    """Deterministic, so a replayed batch upserts the same alert rather than a new one."""
    return f"{drone_id}:{alert_type}:{int(ts.timestamp() * 1000)}"


Key = tuple[str, str]  # (drone id, alert type)


def fold(
    findings: Iterable[tuple[str, Finding]],
    active: dict[Key, ActiveAlert],
    resolves_itself: Callable[[str], bool],
) -> tuple[list[AlertUpdate], dict[Key, ActiveAlert | None]]:
    """Apply (drone id, finding) pairs, in event-time order per drone, to the ``active``
    alerts. Returns the alert updates and the new active alert of every key that changed
    (None: none is active any more)."""
    state: dict[Key, ActiveAlert | None] = {}
    updates: dict[str, AlertUpdate] = {}

    def current(key: Key) -> ActiveAlert | None:
        return state[key] if key in state else active.get(key)

    for drone_id, f in findings:
        key = (drone_id, f.type)
        cur = current(key)
        if cur is not None and _predates(f, cur):
            continue
        if f.severity is None:
            if cur is not None and resolves_itself(f.type):
                upd = updates.get(cur.alert_id) or _existing(cur, drone_id, f)
                upd.resolved_at = f.ts
                upd.resolved_state = resolved_state(upd.severity, cur.state)
                upd.events.append("resolved")
                updates[cur.alert_id] = upd
                state[key] = None
            continue
        if cur is None:
            alert_id = alert_id_for(drone_id, f.type, f.ts)
            upd = AlertUpdate(alert_id, drone_id, f.type, f.severity, f.ts, f.ts, opened=True)
            upd.events.append("opened")
            cur = ActiveAlert(alert_id, f.severity)
        else:
            upd = updates.get(cur.alert_id) or _existing(cur, drone_id, f)
            rise = SEVERITY_RANK[f.severity] - SEVERITY_RANK[upd.severity]
            if rise:
                upd.events.append("escalated" if rise > 0 else "deescalated")
            upd.severity = f.severity
        upd.count += 1
        upd.first_ts = min(upd.first_ts, f.ts)
        upd.last_ts = max(upd.last_ts, f.ts)
        upd.details = f.details
        updates[upd.alert_id] = upd
        state[key] = ActiveAlert(upd.alert_id, f.severity, cur.state)
    return list(updates.values()), state


def resolved_state(severity: Severity, state: str) -> str:
    """The state an alert resolving by itself goes to: a critical one nobody acknowledged
    still waits for a person. (The store applies it only to an alert still ``open``: one a
    person acknowledged meanwhile resolves as ``resolved``.)"""
    return UNACKNOWLEDGED if severity == "critical" and state == "open" else "resolved"


# Opened by the server's clock (the offline timer), resolved by any reading heard after it,
# whatever the drone's clock says.
_OPENED_BY_SERVER_CLOCK = frozenset({"offline"})


def _predates(f: Finding, cur: ActiveAlert) -> bool:
    """Whether ``f`` is about a reading older than the one that opened ``cur`` (its id ends
    with that reading's event time, in ms): only a lane that read the drone's rule memory
    before another lane judged a newer reading can judge it now."""
    if f.type in _OPENED_BY_SERVER_CLOCK:
        return False
    opened_ms = cur.alert_id.rpartition(":")[2]
    return opened_ms.isdigit() and int(f.ts.timestamp() * 1000) < int(opened_ms)


def _existing(cur: ActiveAlert, drone_id: str, f: Finding) -> AlertUpdate:
    return AlertUpdate(cur.alert_id, drone_id, f.type, cur.severity, f.ts, f.ts)
