"""Alerts in simulated history, raised where the live pipeline would raise them: each drone's
readings go through the processor's own rules (``domain/alert_rules.evaluate``) and lifecycle
(``domain/alert_lifecycle.fold``), so alerts have the real types, ids, severities, counts and
details, and open and resolve when the readings say so.

What the live system adds around the rules is played here too: a ``cannot_reach_station``
alert records the automatic return to the nearest station (the caller recalls the drone), and
the alerts that do not resolve themselves (a GPS glitch, a cell failure: they want a person's
look) are acknowledged and then resolved by an operator, minutes later, and a critical one
that resolved itself unacknowledged (``resolved_unacknowledged``) is acknowledged minutes
after. No-fly zones are not
judged (history has no geofences) and no drone goes silent, so there are no ``geofence`` or
``offline`` alerts.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from skyhive.domain.alert_config import AlertConfig
from skyhive.domain.alert_lifecycle import UNACKNOWLEDGED, ActiveAlert, AlertUpdate, Key, fold
from skyhive.domain.alert_rules import AIRBORNE, Context, Memory, evaluate
from skyhive.domain.alerts import Alert, insert_and_set
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import haversine_m, nearest
from skyhive.domain.stations import Station
from skyhive.domain.telemetry import Telemetry

OPERATOR = "ops.history"  # who acknowledges and resolves the simulated alerts
ACK_AFTER_S = (120.0, 900.0)
RESOLVE_AFTER_S = (900.0, 5400.0)  # after the acknowledgement
RESOLVE_NOTE = "checked after landing; no further action"


class NearestStations:
    """The nearest station to a point, looked up once per ~1 km cell (as the processor
    caches it): in the air, every reading asks."""

    def __init__(self, stations: Sequence[Station]) -> None:
        self._stations = stations
        self._by_cell: dict[tuple[float, float], Station] = {}

    def __call__(self, lat: float, lon: float) -> Station:
        cell = (round(lat, 2), round(lon, 2))
        found = self._by_cell.get(cell)
        if found is None:
            [found] = nearest(lat, lon, self._stations, _where, 1)
            self._by_cell[cell] = found
        return found


@dataclass(slots=True)
class _Open:
    """An alert still active: its lifecycle so far, and when a person acts on it (for the
    types that do not resolve themselves)."""

    update: AlertUpdate
    ack_at: datetime | None = None
    resolve_at: datetime | None = None


class DroneAlerts:
    """One drone's alerts, from its readings in time order."""

    def __init__(
        self,
        spec: DroneSpec,
        config: AlertConfig,
        nearest_station: NearestStations,
        rng: random.Random,
    ) -> None:
        self._drone = spec.drone_id
        self._config = config
        self._ctx = Context(config.for_model(spec.model), spec)
        self._nearest = nearest_station
        self._rng = rng
        self._memory = Memory()
        self._active: dict[Key, ActiveAlert] = {}
        self._open: dict[str, _Open] = {}
        self.finished: list[Alert] = []  # resolved alerts not yet taken by the caller

    def observe(self, t: Telemetry) -> Station | None:
        """Judge one reading (newer than the last). Returns the station to recall the drone
        to when it opened or escalated a ``cannot_reach_station`` alert, as the alert
        engine's automatic action does."""
        self._people(t.ts)
        recall = None
        if t.status in AIRBORNE and t.lat is not None and t.lon is not None:
            recall = self._nearest(t.lat, t.lon)
            km = haversine_m(t.lat, t.lon, recall.lat, recall.lon) / 1000.0
            self._ctx.nearest_station = (recall.code, km)
        else:
            self._ctx.nearest_station = None
        findings = evaluate(t, self._ctx, self._memory)
        updates, state = fold(
            [(self._drone, f) for f in findings], self._active, self._config.resolves_itself
        )
        for (drone, kind), new in state.items():
            if new is None:
                self._active.pop((drone, kind), None)
            else:
                self._active[(drone, kind)] = new
        acted = False
        for u in updates:
            if u.type == "cannot_reach_station" and {"opened", "escalated"} & set(u.events):
                assert recall is not None  # judged only in the air
                u.action = {"type": "return_to_station", "station": recall.code, "at": t.ts}
                acted = True
            self._merge(u)
        return recall if acted else None

    def close(self, until: datetime) -> tuple[list[Alert], list[tuple[str, str, ActiveAlert]]]:
        """At the end of history: the alerts not yet taken, those still active as they stand
        at ``until``, and the active ones as the processor's record ((drone, type, active))."""
        self._people(until)
        alerts = self.take() + [self._alert(o, until) for o in self._open.values()]
        active = [(drone, kind, a) for (drone, kind), a in self._active.items()]
        self._open.clear()
        return alerts, active

    def saved(self) -> object:
        """What changes as readings are judged, to go back to with :meth:`restore`."""
        return copy.deepcopy((self._memory, self._active, self._open, self.finished, self._rng))

    def restore(self, saved: object) -> None:
        self._memory, self._active, self._open, self.finished, self._rng = copy.deepcopy(saved)  # type: ignore[misc]

    def take(self) -> list[Alert]:
        out, self.finished = self.finished, []
        return out

    def _merge(self, u: AlertUpdate) -> None:
        """Add one fold's update to the alert's life so far."""
        current = self._open.get(u.alert_id)
        if current is None:
            current = self._open[u.alert_id] = _Open(u)
            if not self._config.resolves_itself(u.type):
                ack = u.first_ts + timedelta(seconds=self._rng.uniform(*ACK_AFTER_S))
                current.ack_at = ack
                current.resolve_at = ack + timedelta(seconds=self._rng.uniform(*RESOLVE_AFTER_S))
        else:
            acc = current.update
            if u.count:
                acc.count += u.count
                acc.last_ts = max(acc.last_ts, u.last_ts)
                acc.severity = u.severity
            if u.details:
                acc.details = u.details
            acc.action = u.action or acc.action
            acc.resolved_at = u.resolved_at
            acc.resolved_state = u.resolved_state
            acc.events += u.events
        if u.resolved_at is None:
            return
        if u.resolved_state == UNACKNOWLEDGED:  # a person acknowledges it later
            late = random.Random(u.alert_id).uniform(*ACK_AFTER_S)  # the drone's rng unmoved
            current.ack_at = u.resolved_at + timedelta(seconds=late)
        else:
            self.finished.append(self._alert(self._open.pop(u.alert_id), u.resolved_at))

    def _people(self, now: datetime) -> None:
        """What the operator has done by ``now``: acknowledged, then resolved, the alerts
        that wait for a person."""
        for alert_id, o in list(self._open.items()):
            key = (self._drone, o.update.type)
            if o.update.resolved_at is not None:  # resolved itself, waiting for the ack
                if o.ack_at is not None and o.ack_at <= now:
                    self.finished.append(self._alert(self._open.pop(alert_id), now))
            elif o.resolve_at is not None and o.resolve_at <= now:
                self._active.pop(key, None)
                self.finished.append(self._alert(self._open.pop(alert_id), now))
            elif o.ack_at is not None and o.ack_at <= now and key in self._active:
                a = self._active[key]
                self._active[key] = ActiveAlert(a.alert_id, a.severity, "acknowledged")

    def _alert(self, o: _Open, at: datetime) -> Alert:
        """The alert document's fields as the store would hold them at ``at``."""
        u = o.update
        on_insert, fields = insert_and_set(u)
        doc: dict[str, Any] = {"id": u.alert_id, **on_insert, **fields, "count": u.count}
        if u.count:
            doc["last_seen"] = u.last_ts
        if o.ack_at is not None and o.ack_at <= at:
            doc |= {
                "state": "resolved" if doc["state"] == UNACKNOWLEDGED else "acknowledged",
                "acknowledged_by": OPERATOR,
                "acknowledged_at": o.ack_at,
                "ack_note": None,
            }
        if o.resolve_at is not None and o.resolve_at <= at:
            doc |= {
                "state": "resolved",
                "resolved_by": OPERATOR,
                "resolved_at": o.resolve_at,
                "resolve_note": RESOLVE_NOTE,
            }
        return Alert.model_validate(doc)


def _where(s: Station) -> tuple[float, float]:
    return s.lat, s.lon
