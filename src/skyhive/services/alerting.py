"""The alerting engine: findings in, alerts out.

Given findings (from the processor's rules, or the offline timer) it reads the drones' active
alerts from Redis, folds the findings into them (``domain/alert_lifecycle.py``), writes the
alert documents (MongoDB, one bulk upsert), takes the automatic actions (a drone that cannot
reach a station is sent to it), publishes every change on the ``alerts`` stream (for the
notifier) and the ``alerts:live`` channel (for the dashboard), and finally records the new
active alerts in Redis. A crash before that last step replays the batch: the alert ids are
deterministic, so the same alerts are upserted again, never new ones.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from skyhive.adapters.alerts_repo import alert_state_key, serialize
from skyhive.domain.alert_config import AlertConfig
from skyhive.domain.alert_lifecycle import ActiveAlert, AlertUpdate, Key, fold
from skyhive.domain.alert_rules import Finding
from skyhive.domain.commands import return_command
from skyhive.settings import Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

ALERTS_LIVE = "alerts:live"
NOTIFY_EVENTS = ("opened", "escalated", "deescalated", "resolved")


class AlertEngine:
    def __init__(self, settings: Settings, clients: Clients) -> None:
        self._s = settings
        self._c = clients
        self._config: AlertConfig = settings.alerts

    def active(self, drone_ids: Sequence[str]) -> dict[Key, ActiveAlert]:
        """The active alerts of these drones, in one round trip."""
        if not drone_ids:
            return {}
        pipe = self._c.redis_text.pipeline(transaction=False)
        for d in drone_ids:
            pipe.hgetall(alert_state_key(d))
        out: dict[Key, ActiveAlert] = {}
        for d, state in zip(drone_ids, pipe.execute(), strict=True):
            for alert_type, raw in state.items():
                out[(d, alert_type)] = ActiveAlert.decode(raw)
        return out

    def apply(self, findings: Sequence[tuple[str, Finding]], pipe: Any = None) -> list[AlertUpdate]:
        """Fold (drone id, finding) pairs — event-time order per drone — into the alerts.
        The Redis state changes are queued on ``pipe`` when given (the caller executes it),
        else written at once."""
        if not findings:
            return []
        drones = sorted({d for d, _ in findings})
        updates, state = fold(findings, self.active(drones), self._config.resolves_itself)
        if not updates:
            return []
        self._c.alerts.apply(updates)
        self._act(updates)
        self._publish(updates)
        own = pipe is None
        pipe = self._c.redis_text.pipeline(transaction=False) if own else pipe
        queue_state(pipe, state)
        if own:
            pipe.execute()
        return updates

    def _act(self, updates: list[AlertUpdate]) -> None:
        """Automatic actions: a drone that cannot reach a station is ordered to the nearest
        one (through the commands stream the dispatchers relay), and the alert says so."""
        now = datetime.now(UTC)
        commands = []
        for u in updates:
            if u.type != "cannot_reach_station" or not {"opened", "escalated"} & set(u.events):
                continue
            station = self._c.stations.get(str(u.details.get("station", "")))
            if station is None:
                continue
            reason = f"alert {u.alert_id}: battery cannot reach a station with the reserve"
            commands.append((u.drone_id, orjson.dumps(return_command(station, now, reason))))
            action = {"type": "return_to_station", "station": station.code, "at": now}
            self._c.alerts.set_fields(u.alert_id, {"action": action})
            u.details = {**u.details, "action": action}
        if commands:
            self._c.bus.publish(self._s.commands_stream, commands)

    def _publish(self, updates: list[AlertUpdate]) -> None:
        notify = [u for u in updates if any(e in NOTIFY_EVENTS for e in u.events)]
        if not notify:
            return
        docs = {str(d["_id"]): d for d in self._c.alerts.get_many([u.alert_id for u in notify])}
        events = []
        for u in notify:
            body = serialize(docs[u.alert_id]) if u.alert_id in docs else {"id": u.alert_id}
            for change in u.events:
                events.append((u.drone_id, orjson.dumps({**body, "change": change})))
        self._c.bus.publish(self._s.alerts_stream, events)
        self._c.redis_text.publish(ALERTS_LIVE, b"[" + b",".join(v for _, v in events) + b"]")

    def publish_change(self, doc: dict[str, Any], change: str) -> None:
        """An alert changed by a person (acknowledged, resolved): tell the notifier and the
        dashboard like any other change."""
        body = orjson.dumps({**serialize(doc), "change": change})
        self._c.bus.publish(self._s.alerts_stream, [(str(doc["drone_id"]), body)])
        self._c.redis_text.publish(ALERTS_LIVE, b"[" + body + b"]")


def queue_state(pipe: Any, state: dict[Key, ActiveAlert | None]) -> None:
    """Queue the Redis writes for new active alerts (None: none any more)."""
    by_drone: dict[str, list[tuple[str, ActiveAlert | None]]] = defaultdict(list)
    for (drone_id, alert_type), active in state.items():
        by_drone[drone_id].append((alert_type, active))
    for drone_id, items in by_drone.items():
        key = alert_state_key(drone_id)
        for alert_type, active in items:
            if active is None:
                pipe.hdel(key, alert_type)
            else:
                pipe.hset(key, alert_type, active.encode())
