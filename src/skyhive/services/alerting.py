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
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from skyhive.adapters.alerts_repo import alert_state_key, new_document, serialize
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
        self._swap = clients.redis_text.register_script(_SWAP)

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
        before = self.active(drones)
        updates, state = fold(findings, before, self._config.resolves_itself)
        if not updates:
            return []
        commands = self._plan_actions(updates)
        if commands:
            self._c.bus.publish(self._s.commands_stream, commands)
        # A new alert is announced before it is written: its document is all in the update,
        # and MongoDB, busy with history, may take a few hundred ms. A crash before the write
        # replays the batch; the notifier knows the alert id and does not notify twice.
        self._publish([(u, new_document(u)) for u in updates if u.opened])
        self._c.alerts.apply(updates)
        self._publish_read_back([u for u in updates if not u.opened])
        own = pipe is None
        pipe = self._c.redis_text.pipeline(transaction=False) if own else pipe
        self.queue_state(pipe, state, before)
        if own:
            pipe.execute()
        return updates

    def queue_state(
        self, pipe: Any, state: dict[Key, ActiveAlert | None], before: dict[Key, ActiveAlert]
    ) -> None:
        """Queue the Redis writes for new active alerts (None: none any more), each conditional
        on the alert the batch started from still being the active one (see ``_SWAP``)."""
        for (drone_id, alert_type), active in state.items():
            prev = before.get((drone_id, alert_type))
            args = [alert_type, prev.encode() if prev else "", active.encode() if active else ""]
            self._swap(keys=[alert_state_key(drone_id)], args=args, client=pipe)

    def _plan_actions(self, updates: list[AlertUpdate]) -> list[tuple[str, bytes]]:
        """Automatic actions: a drone that cannot reach a station is ordered to the nearest
        one (the commands returned go on the stream the dispatchers relay), and the alert
        records it (``AlertUpdate.action``, written with the alert)."""
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
            u.action = {"type": "return_to_station", "station": station.code, "at": now}
        return commands

    def _publish_read_back(self, updates: list[AlertUpdate]) -> None:
        """Changes to existing alerts, announced with their documents as now stored."""
        updates = [u for u in updates if _notifiable(u)]
        if updates:
            docs = {
                str(d["_id"]): d for d in self._c.alerts.get_many([u.alert_id for u in updates])
            }
            self._publish([(u, docs.get(u.alert_id, {"_id": u.alert_id})) for u in updates])

    def _publish(self, changed: list[tuple[AlertUpdate, dict[str, Any]]]) -> None:
        events = []
        for u, doc in changed:
            if not _notifiable(u):
                continue
            body = serialize(doc)
            for change in u.events:
                events.append((u.drone_id, orjson.dumps({**body, "change": change})))
        if not events:
            return
        self._c.bus.publish(self._s.alerts_stream, events)
        self._c.redis_text.publish(ALERTS_LIVE, b"[" + b",".join(v for _, v in events) + b"]")

    def publish_change(self, doc: dict[str, Any], change: str) -> None:
        """An alert changed by a person (acknowledged, resolved): tell the notifier and the
        dashboard like any other change."""
        body = orjson.dumps({**serialize(doc), "change": change})
        self._c.bus.publish(self._s.alerts_stream, [(str(doc["drone_id"]), body)])
        self._c.redis_text.publish(ALERTS_LIVE, b"[" + body + b"]")


def _notifiable(u: AlertUpdate) -> bool:
    return any(e in NOTIFY_EVENTS for e in u.events)


# Replace a drone's active alert of one type only if it is still the one the batch read: a
# person may have resolved it meanwhile, and a resolved alert must not come back to life
# (its next finding opens a new one); one they acknowledged stays acknowledged.
# KEYS: alertstate hash; ARGV: type, expected ('' = none), new ('' = delete).
_SWAP = """
local function id_of(v)
  return string.match(v, '^(.*)|[^|]*|[^|]*$') or string.match(v, '^(.*)|[^|]*$') or v
end
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if id_of(cur) ~= id_of(ARGV[2]) then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
local new = ARGV[3]
local state = string.match(cur, '|(acknowledged)$')
if state and id_of(cur) == id_of(new) then
  new = (string.gsub(new, '|[^|]*$', '|' .. state))  -- keep a person's acknowledgement
end
redis.call('HSET', KEYS[1], ARGV[1], new)
return 1
"""
