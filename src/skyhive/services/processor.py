"""Stream processor: telemetry from the bus → live state (Redis), history (MongoDB), alerts.

Per batch: decode and validate; drop duplicates by (drone_id, seq); write history in bulk with
idempotent ids; update live state in one Redis pipeline (never moving a drone backwards);
fold alert conditions into the open alerts and emit the changes; acknowledge last. A crash
anywhere before the acknowledgement replays the batch, and every write is keyed so a replay
is harmless.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from skyhive.adapters.alerts_repo import serialize
from skyhive.adapters.bus import BusMessage
from skyhive.adapters.deadletters import DeadLetter
from skyhive.adapters.fleet_repo import REGISTERED
from skyhive.adapters.live_state import FLEET_UPDATES
from skyhive.domain.alert_rules import AlertChange, OpenAlert, Thresholds, evaluate, fold
from skyhive.domain.telemetry import InvalidTelemetry, Telemetry, parse_telemetry
from skyhive.services.ingest import encode_for_bus
from skyhive.settings import Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

ALERTS_LIVE = "alerts:live"


def alert_state_key(drone_id: str) -> str:
    return f"alertstate:{drone_id}"


@dataclass(slots=True)
class BatchStats:
    received: int = 0
    invalid: int = 0
    duplicates: int = 0
    stored: int = 0
    live_updates: int = 0
    alert_changes: int = 0


class Processor:
    def __init__(self, settings: Settings, clients: Clients, consumer: str | None = None) -> None:
        self._s = settings
        self._c = clients
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._thresholds = Thresholds(
            settings.low_battery_warning_pct, settings.low_battery_critical_pct
        )
        self.totals = BatchStats()
        self._retry_own = False  # after a failed batch, its entries are still ours and pending

    def setup(self) -> None:
        self._c.bus.ensure_group(self._s.telemetry_stream, self._s.processor_group)

    def poll(self) -> int:
        """Process one batch (stale entries of dead consumers first); returns its size."""
        s = self._s
        if self._retry_own:
            msgs = self._c.bus.consume(
                s.telemetry_stream,
                s.processor_group,
                self.consumer,
                s.processor_batch_size,
                0,
                own_pending=True,
            )
            if msgs:
                self._run(msgs)
                return len(msgs)
            self._retry_own = False
        msgs = self._c.bus.claim_stale(
            s.telemetry_stream,
            s.processor_group,
            self.consumer,
            s.processor_claim_idle_ms,
            s.processor_batch_size,
        )
        if not msgs:
            msgs = self._c.bus.consume(
                s.telemetry_stream,
                s.processor_group,
                self.consumer,
                s.processor_batch_size,
                s.processor_block_ms,
            )
        if msgs:
            self._run(msgs)
        return len(msgs)

    def _run(self, msgs: list[BusMessage]) -> None:
        self._retry_own = True
        self.process(msgs)
        self._c.bus.ack(self._s.telemetry_stream, self._s.processor_group, [m.id for m in msgs])
        self._retry_own = False

    def process(self, msgs: list[BusMessage]) -> BatchStats:
        st = BatchStats(received=len(msgs))
        readings, invalid = self._decode(msgs)
        st.invalid = len(invalid)
        fresh, unregistered = self._drop_seen(readings)
        st.duplicates = len(readings) - len(fresh)
        docs = [t.history_document() for t in fresh]
        for doc in docs:
            if doc["drone_id"] in unregistered:
                doc["unregistered"] = True  # ingested all the same, but flagged
        st.stored, refused = self._c.telemetry.insert(docs)
        if refused:
            invalid += [
                DeadLetter(f"history write refused: {m}", encode_for_bus(fresh[i]), "processor")
                for i, m in refused.items()
            ]
            fresh = [t for i, t in enumerate(fresh) if i not in refused]
            st.invalid = len(invalid)
        changes = self._alerts(fresh)
        st.alert_changes = len(changes)
        st.live_updates = self._update_live(fresh, changes, unregistered)
        self._c.deadletters.add(invalid)
        self._add(st)
        return st

    def _decode(self, msgs: list[BusMessage]) -> tuple[list[Telemetry], list[DeadLetter]]:
        readings, invalid = [], []
        for m in msgs:
            try:
                readings.append(parse_telemetry(m.value, max_bytes=self._s.max_message_bytes * 2))
            except InvalidTelemetry as exc:
                invalid.append(DeadLetter(exc.reason, m.value, "processor"))
        return readings, invalid

    def _drop_seen(self, readings: list[Telemetry]) -> tuple[list[Telemetry], set[str]]:
        """Duplicates within the batch, then against each drone's recent-sequence window.

        Also returns the drones of the batch that are not in the fleet registry."""
        by_drone: dict[str, dict[int, Telemetry]] = defaultdict(dict)
        for t in readings:
            by_drone[t.drone_id].setdefault(t.seq, t)
        pipe = self._c.redis_text.pipeline(transaction=False)
        order = list(by_drone.items())
        for drone_id, seqs in order:
            self._c.live.queue_seen_check(pipe, drone_id, list(seqs))
        if order:
            pipe.smismember(REGISTERED, [drone_id for drone_id, _ in order])
        results = pipe.execute()
        fresh: list[Telemetry] = []
        for (_, seqs), scores in zip(order, results, strict=False):
            fresh.extend(t for t, score in zip(seqs.values(), scores, strict=True) if score is None)
        known = results[-1] if order else []
        unregistered = {d for (d, _), ok in zip(order, known, strict=True) if not ok}
        return fresh, unregistered

    def _alerts(self, fresh: list[Telemetry]) -> list[AlertChange]:
        conditions = [c for t in fresh for c in evaluate(t, self._thresholds)]
        if not conditions:
            return []
        drones = sorted({c.drone_id for c in conditions})
        pipe = self._c.redis_text.pipeline(transaction=False)
        for d in drones:
            pipe.hgetall(alert_state_key(d))
        current: dict[tuple[str, str], OpenAlert] = {}
        for d, state in zip(drones, pipe.execute(), strict=True):
            for alert_type, raw in state.items():
                current[(d, alert_type)] = OpenAlert.decode(raw)
        changes = fold(conditions, current)
        self._c.alerts.apply(changes)
        notify = [ch for ch in changes if ch.notify]
        if notify:
            docs = {d["_id"]: d for d in self._c.alerts.get_many([ch.alert_id for ch in notify])}
            events = []
            for ch in notify:
                body = serialize(docs[ch.alert_id]) if ch.alert_id in docs else {"id": ch.alert_id}
                body["change"] = "opened" if ch.opened else "escalated"
                events.append((ch.drone_id, orjson.dumps(body)))
            self._c.bus.publish(self._s.alerts_stream, events)
            self._c.redis_text.publish(
                ALERTS_LIVE, orjson.dumps([orjson.loads(v) for _, v in events])
            )
        return changes

    def _update_live(
        self, fresh: list[Telemetry], changes: list[AlertChange], unregistered: set[str]
    ) -> int:
        latest: dict[str, Telemetry] = {}
        for t in fresh:
            cur = latest.get(t.drone_id)
            if cur is None or t.newer_than(cur.ts_ms, cur.seq):
                latest[t.drone_id] = t
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        live = self._c.live
        pipe = self._c.redis_text.pipeline(transaction=False)
        for t in latest.values():
            live.queue_apply(pipe, t, now, registered=t.drone_id not in unregistered)
        seqs: dict[str, list[int]] = defaultdict(list)
        for t in fresh:
            seqs[t.drone_id].append(t.seq)
        for drone_id, drone_seqs in seqs.items():
            live.queue_mark_seen(pipe, drone_id, drone_seqs, self._s.dedup_window)
        for ch in changes:
            pipe.hset(
                alert_state_key(ch.drone_id), ch.type, OpenAlert(ch.alert_id, ch.severity).encode()
            )
        results = pipe.execute()
        applied = [t for t, ok in zip(latest.values(), results, strict=False) if ok == 1]
        if applied:
            updates = [{**t.live_fields(), "updated_at": now} for t in applied]
            self._c.redis_text.publish(FLEET_UPDATES, orjson.dumps(updates))
        return len(applied)

    def _add(self, st: BatchStats) -> None:
        for name in BatchStats.__slots__:
            setattr(self.totals, name, getattr(self.totals, name) + getattr(st, name))


def run_processor(settings: Settings, stop: threading.Event) -> None:
    clients = Clients(settings)
    proc = Processor(settings, clients)
    backoff = 0.5
    try:
        while not stop.is_set():
            try:
                proc.setup()
                break
            except Exception as exc:
                log.warning("processor waiting for the bus: %s", exc)
                stop.wait(backoff)
        log.info("processor %s consuming %s", proc.consumer, settings.telemetry_stream)
        last_log = time.monotonic()
        while not stop.is_set():
            try:
                n = proc.poll()
                backoff = 0.5
                if 0 < n < settings.processor_batch_size // 4:
                    # Let a fuller batch form: per-batch round trips dominate small batches.
                    stop.wait(settings.processor_linger_ms / 1000.0)
            except Exception:
                # Unacknowledged entries stay pending and are re-read after the backoff.
                log.exception("processor batch failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            if time.monotonic() - last_log > 30:
                t = proc.totals
                log.info(
                    "processor: %d received, %d stored, %d duplicates, %d invalid, %d alert changes",
                    t.received,
                    t.stored,
                    t.duplicates,
                    t.invalid,
                    t.alert_changes,
                )
                last_log = time.monotonic()
    finally:
        clients.close()
