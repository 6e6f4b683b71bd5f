"""The alerting engine: findings in, alerts out.

Given findings (from the processor's rules, or the offline timer) it reads the drones' active
alerts (the ``ActiveAlerts`` port), folds the findings into them
(``domain/alert_lifecycle.py``), writes the alerts (the ``AlertStore``, one bulk upsert), takes
the automatic actions (a drone that cannot reach a station is sent to it), publishes every
change on the ``alerts`` stream (for the notifier) and the live feed (for the dashboard),
grounds or ungrounds the drones of the alerts that ground them (``Alert.grounds``: the
dispatcher passes over a grounded drone), and finally records the new active alerts. A crash
before that last step replays the batch: the alert ids are deterministic, so the same alerts
are upserted again, never new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson

from skyhive.domain.alert_config import AlertConfig
from skyhive.domain.alert_lifecycle import AlertUpdate, fold
from skyhive.domain.alert_rules import Finding
from skyhive.domain.alerts import Alert, opened_alert
from skyhive.domain.commands import return_command
from skyhive.ports.active_alerts import ActiveAlerts, AlertSwap
from skyhive.ports.alert_feed import AlertFeed
from skyhive.ports.alert_store import AlertStore
from skyhive.ports.bus import Bus
from skyhive.ports.clock import Clock
from skyhive.ports.grounding import Grounding
from skyhive.ports.stations import StationLookup
from skyhive.settings import Settings

log = logging.getLogger(__name__)

NOTIFY_EVENTS = ("opened", "escalated", "deescalated", "resolved")
# Critical alerts that send their drone to the station in their details, and why.
RETURNS = {
    "cannot_reach_station": "battery cannot reach a station with the reserve",
    "conformance": "off its declared flight for too long (contingent)",
}


class AlertEngine:
    def __init__(
        self,
        settings: Settings,
        *,
        active: ActiveAlerts,
        store: AlertStore,
        feed: AlertFeed,
        bus: Bus,
        stations: StationLookup,
        grounding: Grounding,
        clock: Clock,
    ) -> None:
        self._s = settings
        self._config: AlertConfig = settings.alerts
        self.active = active
        self._store = store
        self._feed = feed
        self._bus = bus
        self._stations = stations
        self.grounding = grounding
        self._clock = clock

    def apply(self, findings: Sequence[tuple[str, Finding]]) -> list[AlertUpdate]:
        """:meth:`fold`, then record the new active alerts."""
        updates, swaps = self.fold(findings)
        self.active.swap(swaps)
        return updates

    def fold(
        self, findings: Sequence[tuple[str, Finding]]
    ) -> tuple[list[AlertUpdate], list[AlertSwap]]:
        """Fold (drone id, finding) pairs — event-time order per drone — into the alerts:
        store, act, announce. Returns the updates and the active alerts to record (the
        caller records them, last)."""
        if not findings:
            return [], []
        drones = sorted({d for d, _ in findings})
        before = self.active.get_many(drones)
        updates, state = fold(findings, before, self._config.resolves_itself)
        if not updates:
            return [], []
        for u in updates:
            u.grounding = self._config.grounds(u.type, u.severity)
        commands = self._plan_actions(updates)
        if commands:
            self._bus.publish(self._s.commands_stream, commands)
        # A new alert is announced before it is written: it is all in the update, and the
        # store, busy with history, may take a few hundred ms. A crash before the write
        # replays the batch; the notifier knows the alert id and does not notify twice.
        opened = [opened_alert(u) for u in updates if u.opened]
        self._publish(list(zip([u for u in updates if u.opened], opened, strict=True)))
        self._store.apply(updates)
        stored = self._publish_read_back([u for u in updates if not u.opened])
        self.ground(opened + stored)
        swaps = [AlertSwap(d, t, before.get((d, t)), new) for (d, t), new in state.items()]
        return updates, swaps

    def _plan_actions(self, updates: list[AlertUpdate]) -> list[tuple[str, bytes]]:
        """Automatic actions: a drone that cannot reach a station, or whose delivery became
        contingent, is ordered to the nearest one (the commands returned go on the stream
        the dispatchers relay), and the alert records it (``AlertUpdate.action``, written
        with the alert)."""
        now = self._clock.now()
        commands = []
        for u in updates:
            why = RETURNS.get(u.type)
            if (
                why is None
                or u.severity != "critical"
                or not {"opened", "escalated"} & set(u.events)
            ):
                continue
            station = self._stations.get(str(u.details.get("station", "")))
            if station is None:
                continue
            reason = f"alert {u.alert_id}: {why}"
            commands.append((u.drone_id, return_command(station, now, reason).to_json()))
            u.action = {"type": "return_to_station", "station": station.code, "at": now}
        return commands

    def _publish_read_back(self, updates: list[AlertUpdate]) -> list[Alert]:
        """Changes to existing alerts, announced as now stored; returns them as stored."""
        updates = [u for u in updates if _notifiable(u)]
        if not updates:
            return []
        stored = {a.id: a for a in self._store.get_many([u.alert_id for u in updates])}
        self._publish([(u, stored.get(u.alert_id)) for u in updates])
        return list(stored.values())

    def ground(self, alerts: Sequence[Alert]) -> None:
        """Ground the drone of each of ``alerts`` that grounds it, unground it of those
        that no longer do (as they are stored: a person's change, or the engine's)."""
        self.grounding.set([(a.drone_id, a.id, a.grounds) for a in alerts if a.grounding])

    def rebuild_grounding(self) -> int:
        """Bring the grounded drones in line with MongoDB, the truth (at start-up: a write
        lost between the store and Redis). Adds what the store says grounds; takes away
        what Redis holds and the store, read after it, says does not. Returns how many
        drones are grounded."""
        grounds = self._store.grounding()
        known = {a.id for a in grounds}
        held = {i: d for d, ids in self.grounding.all().items() for i in ids if i not in known}
        found = {a.id: a for a in self._store.get_many(list(held))} if held else {}
        changes = [(a.drone_id, a.id, True) for a in grounds]
        changes += [(d, i, i in found and found[i].grounds) for i, d in held.items()]
        self.grounding.set(changes)
        return len(self.grounding.all())

    def _publish(self, changed: list[tuple[AlertUpdate, Alert | None]]) -> None:
        events = []
        for u, alert in changed:
            if not _notifiable(u):
                continue
            body = alert.to_json() if alert is not None else {"id": u.alert_id}
            for change in u.events:
                events.append((u.drone_id, orjson.dumps({**body, "change": change})))
        if not events:
            return
        self._bus.publish(self._s.alerts_stream, events)
        self._feed.announce_alerts([v for _, v in events])

    def publish_change(self, alert: Alert, change: str) -> None:
        """An alert changed by a person (acknowledged, resolved): tell the notifier and the
        dashboard like any other change."""
        body = orjson.dumps({**alert.to_json(), "change": change})
        self._bus.publish(self._s.alerts_stream, [(alert.drone_id, body)])
        self._feed.announce_alerts([body])


def _notifiable(u: AlertUpdate) -> bool:
    return any(e in NOTIFY_EVENTS for e in u.events)
