"""Small in-memory implementations of the processing and notification ports, so the logic of
the processor, the alerting engine and the notifier is tested without servers. They keep
only what those services ask of the port; the adapters are tested against real servers."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from skyhive.domain.alert_lifecycle import ActiveAlert, AlertUpdate, Key
from skyhive.domain.alerts import Alert, insert_and_set, resolution_fields
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geofence import Geofence
from skyhive.domain.stations import Station, bart_stations
from skyhive.domain.telemetry import Telemetry
from skyhive.ports.active_alerts import AlertSwap
from skyhive.ports.bus import BusMessage
from skyhive.ports.deadletters import DeadLetter
from skyhive.ports.fleet_state import FleetWrite, Recall, Recalled, Silent
from skyhive.ports.notifications import Outcome
from skyhive.ports.sender import Message


class MemoryBus:
    """One consumer group per stream is enough here."""

    def __init__(self) -> None:
        self.streams: dict[str, list[BusMessage]] = defaultdict(list)
        self.pending: dict[str, set[str]] = defaultdict(set)
        self.acked: list[str] = []
        self.kept: list[list[str]] = []
        self._read: dict[str, int] = defaultdict(int)

    def publish(self, stream: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        out = []
        for key, value in items:
            msg = BusMessage(f"{len(self.streams[stream]) + 1}-0", key, value)
            self.streams[stream].append(msg)
            out.append(msg.id)
        return out

    def ensure_group(self, stream: str, group: str) -> None:
        pass

    def consume(
        self,
        stream: str,
        group: str,
        consumer: str,
        count: int,
        block_ms: int,
        *,
        own_pending: bool = False,
    ) -> list[BusMessage]:
        if own_pending:
            return [m for m in self.streams[stream] if m.id in self.pending[stream]][:count]
        start = self._read[stream]
        msgs = self.streams[stream][start : start + count]
        self._read[stream] += len(msgs)
        self.pending[stream] |= {m.id for m in msgs}
        return msgs

    def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[BusMessage]:
        return []

    def keep_claimed(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> None:
        self.kept.append(list(ids))

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> None:
        self.pending[stream] -= set(ids)
        self.acked += ids

    def ping(self) -> bool:
        return True


class MemoryActiveAlerts:
    def __init__(self) -> None:
        self.state: dict[Key, ActiveAlert] = {}

    def get_many(self, drone_ids: Sequence[str]) -> dict[Key, ActiveAlert]:
        return {k: v for k, v in self.state.items() if k[0] in drone_ids}

    def get(self, drone_id: str, alert_type: str) -> ActiveAlert | None:
        return self.state.get((drone_id, alert_type))

    def swap(self, swaps: Sequence[AlertSwap]) -> None:
        for s in swaps:
            key = (s.drone_id, s.type)
            cur = self.state.get(key)
            if (cur and cur.alert_id) != (s.expected and s.expected.alert_id):
                continue
            if s.new is None:
                self.state.pop(key, None)
            elif cur is not None and cur.alert_id == s.new.alert_id:
                self.state[key] = ActiveAlert(s.new.alert_id, s.new.severity, cur.state)
            else:
                self.state[key] = s.new

    def put(self, drone_id: str, alert_type: str, active: ActiveAlert) -> None:
        self.state[(drone_id, alert_type)] = active

    def remove(self, drone_id: str, alert_type: str) -> None:
        self.state.pop((drone_id, alert_type), None)


class MemoryGrounding:
    def __init__(self) -> None:
        self.grounded: dict[str, list[str]] = {}

    def set(self, changes: Sequence[tuple[str, str, bool]]) -> None:
        for drone_id, alert_id, on in changes:
            ids = [i for i in self.grounded.get(drone_id, []) if i != alert_id]
            ids += [alert_id] if on else []
            if ids:
                self.grounded[drone_id] = ids
            else:
                self.grounded.pop(drone_id, None)

    def of_many(self, drone_ids: Sequence[str]) -> dict[str, list[str]]:
        return {d: self.grounded[d] for d in drone_ids if d in self.grounded}

    def all(self) -> dict[str, list[str]]:
        return dict(self.grounded)


class MemoryFleetState:
    def __init__(
        self, alerts: MemoryActiveAlerts, registered: set[str] | None = None, window: int = 2048
    ) -> None:
        self.alerts = alerts
        self.window = window
        self.registered = registered or set()
        self.live: dict[str, Telemetry] = {}
        self.seen: dict[str, list[int]] = defaultdict(list)
        self.memory: dict[str, bytes] = {}
        self.heard: dict[str, float] = {}
        self.stations: dict[tuple[float, float], tuple[str, float]] = {}

    def recall(
        self,
        seqs: Mapping[str, Sequence[int]],
        near: Mapping[str, tuple[float, float]],
        radius_km: float,
    ) -> Recall:
        drones = {}
        for d, asked in seqs.items():
            mem = self.memory.get(d)
            has = any(k[0] == d for k in self.alerts.state)
            seen = [s in self.seen[d] for s in asked]
            drones[d] = Recalled(mem.decode() if mem else None, has, seen, d in self.registered)
        return Recall(drones, {d: hit for d, p in near.items() if (hit := self.stations.get(p))})

    def commit(self, write: FleetWrite) -> list[Telemetry]:
        self.alerts.swap(write.alerts)
        for d in write.heard:
            self.heard[d] = max(self.heard.get(d, 0.0), write.heard_at.timestamp())
        applied = []
        for t, _ in write.latest:
            cur = self.live.get(t.drone_id)
            if cur is None or t.newer_than(cur.ts_ms, cur.seq):
                self.live[t.drone_id] = t
                applied.append(t)
        for d, seqs in write.seen.items():
            self.seen[d] = (self.seen[d] + seqs)[-self.window :]
        self.memory.update(write.memory)
        return applied

    def take_sweep(self, hold_ms: int) -> bool:
        return True

    def silent(self, before: float, limit: int) -> list[Silent]:
        quiet = sorted((at, d) for d, at in self.heard.items() if at <= before)[:limit]
        return [Silent(d, at, self.live[d].status if d in self.live else None) for at, d in quiet]

    def forget_heard(self, drone_id: str) -> None:
        self.heard.pop(drone_id, None)


class MemoryAlertStore:
    def __init__(self) -> None:
        self.alerts: dict[str, dict[str, Any]] = {}

    def apply(self, updates: Sequence[AlertUpdate]) -> None:
        for u in updates:
            on_insert, fields = insert_and_set(u)
            doc = self.alerts.setdefault(u.alert_id, {"id": u.alert_id, **on_insert, "count": 0})
            doc.update(fields)
            if u.count:
                doc["count"] += u.count
                doc["last_seen"] = max(doc.get("last_seen") or u.last_ts, u.last_ts)
            resolved = resolution_fields(u)
            if resolved is not None and doc["state"] in ("open", "acknowledged"):
                doc.update(resolved)
                if doc.get("acknowledged_by"):
                    doc["state"] = "resolved"

    def get(self, alert_id: str) -> Alert | None:
        doc = self.alerts.get(alert_id)
        return Alert.model_validate(doc) if doc else None

    def get_many(self, ids: Sequence[str]) -> list[Alert]:
        return [a for i in ids if (a := self.get(i)) is not None]

    def grounding(self) -> list[Alert]:
        return [a for i in self.alerts if (a := self.get(i)) is not None and a.grounds]

    def list(
        self,
        state: str | None = None,
        drone_id: str | None = None,
        limit: int = 100,
        severity: str | None = None,
        alert_type: str | None = None,
        since: datetime | None = None,
        before: str | None = None,
    ) -> list[Alert]:
        """By state and drone only: the services here ask no more."""
        return [
            Alert.model_validate(d)
            for d in self.alerts.values()
            if state in (None, d["state"]) and drone_id in (None, d["drone_id"])
        ]

    def count_by_severity(self, state: str) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for a in self.list(state=state):
            out[a.severity] += 1
        return dict(out)

    def change_state(
        self, alert_id: str, from_states: Sequence[str], fields: dict[str, Any]
    ) -> Alert | None:
        doc = self.alerts.get(alert_id)
        if doc is None or doc["state"] not in from_states:
            return None
        doc.update(fields)
        return Alert.model_validate(doc)


class Announced:
    """The live alert feed: what was announced."""

    def __init__(self) -> None:
        self.events: list[bytes] = []

    def announce_alerts(self, events: Sequence[bytes]) -> None:
        self.events += events


class Stations:
    def __init__(self) -> None:
        self._all = {s.code: s for s in bart_stations()}

    def get(self, code: str) -> Station | None:
        return self._all.get(code)

    def all(self) -> dict[str, Station]:
        return self._all


class NoGeofences:
    def version(self) -> int:
        return 0

    def all_enabled(self) -> list[Geofence]:
        return []


class Registry:
    def __init__(self, specs: Sequence[DroneSpec] = ()) -> None:
        self._specs = {s.drone_id: s for s in specs}

    def get(self, drone_id: str) -> DroneSpec | None:
        return self._specs.get(drone_id)

    def specs(self, drone_ids: Sequence[str]) -> dict[str, DroneSpec]:
        return {d: self._specs[d] for d in drone_ids if d in self._specs}

    def registered_ids(self) -> set[str]:
        return set(self._specs)

    def max_payload_kg(self) -> float:
        return max((s.max_payload_kg for s in self._specs.values()), default=0.0)

    def sync_registered_set(self) -> None:
        pass


class DeadLetterList:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def add(self, letters: Sequence[DeadLetter]) -> None:
        self.letters += letters


class MemoryReminders:
    def __init__(self) -> None:
        self.due: dict[str, float] = {}
        self.counts: dict[str, str] = {}

    def schedule(self, alert_id: str, due: float, start_ms: int) -> bool:
        if alert_id in self.due:
            return False
        self.due[alert_id], self.counts[alert_id] = due, f"{start_ms}:0"
        return True

    def claim_due(self, now: float, lease_until: float, limit: int) -> list[tuple[str, str]]:
        out = [
            (a, self.counts.setdefault(a, f"{int(now * 1000)}:0"))
            for a, at in self.due.items()
            if at <= now
        ]
        for a, _ in out[:limit]:
            self.due[a] = lease_until
        return out[:limit]

    def reminded(self, alert_id: str, count: str, new_count: str, next_due: float) -> bool:
        if self.counts.get(alert_id) != count:
            return False
        self.counts[alert_id], self.due[alert_id] = new_count, next_due
        return True

    def release(self, alert_ids: Sequence[str], due: float) -> None:
        for a in alert_ids:
            if a in self.due:
                self.due[a] = due

    def drop(self, alert_id: str) -> None:
        self.due.pop(alert_id, None)
        self.counts.pop(alert_id, None)


class NotificationRecords:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, str, Outcome, int]] = []
        self.final: set[str] = set()
        self._lock = threading.Lock()

    def ensure_indexes(self) -> None:
        pass

    def was_sent(self, alert_id: str, channel: str) -> bool:
        return any(r[0] == alert_id and r[1] == channel and r[3] == "sent" for r in self.records)

    def record(
        self,
        alert_id: str,
        channel: str,
        change: str,
        outcome: Outcome,
        attempt: int,
        error: str | None = None,
        *,
        final_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> bool:
        with self._lock:
            if final_id is not None and final_id in self.final:
                return False
            if final_id is not None:
                self.final.add(final_id)
            self.records.append((alert_id, channel, change, outcome, attempt))
        return True


class SendMarkSet:
    def __init__(self) -> None:
        self.done: set[str] = set()
        self.slots: dict[str, str] = {}

    def is_done(self, record_id: str) -> bool:
        return record_id in self.done

    def mark_done(self, record_id: str) -> None:
        self.done.add(record_id)

    def take_slot(self, slot: str, record_id: str, ttl_ms: int, *, force: bool = False) -> bool:
        if force or slot not in self.slots:
            self.slots[slot] = record_id
        return self.slots[slot] == record_id


class GatedSender:
    """Sends when let: each message waits for ``release`` (a channel that is slow)."""

    display = "memory://"
    valid = True

    def __init__(self, gated: bool = False) -> None:
        self.sent: list[Message] = []
        self.gate = threading.Event()
        if not gated:
            self.gate.set()

    def send(self, msg: Message) -> str | None:
        self.gate.wait(10)
        self.sent.append(msg)
        return None

    def scrub(self, text: str) -> str:
        return text


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")
