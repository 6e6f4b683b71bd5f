"""Archiver: telemetry from the bus → history (MongoDB), in buckets.

A consumer group of its own (``SKYHIVE_ARCHIVER_GROUP``) on the telemetry stream, beside the
processor's: the slowest write of the pipeline runs at its own pace and never delays live
state or alerts.

History is kept in buckets (``domain/history.py``): one document per drone per few seconds of
reading time, written by one idempotent upsert per bucket. A bucket pays only when it is
written (nearly) whole, so the archiver holds readings: a bucket is written once its drone has
a reading in a later bucket, once held ``archiver_hold_s``, or as soon as the stream is idle
(so history is complete moments after a load ends), and its bus entries are acknowledged only
after that write returned. Held entries are claimed again on the bus while they wait, so
another archiver does not take them for a dead one's; a crash leaves them pending, and their
replay writes the same readings into the same buckets again (a no-op).

The minutes of each written bucket are marked pending for the rollups before the entries are
acknowledged, and a pass every few seconds sums up those that closed (``services/rollups.py``):
on the clock of the newest bucket written while a backlog is worked through, so a minute is
summed up once its readings are written, not again at every pass.

Invalid messages are the processor's to dead-letter, and skipped here; a reading the server
refuses for its content is dead-lettered with the server's reason.
"""

from __future__ import annotations

import logging

from skyhive.domain.history import HeldBuckets
from skyhive.domain.telemetry import InvalidTelemetry, Telemetry, parse_telemetry
from skyhive.ports.bus import Bus, BusMessage
from skyhive.ports.clock import Clock
from skyhive.ports.deadletters import DeadLetter, DeadLetterSink
from skyhive.ports.history import TelemetryHistory
from skyhive.ports.registry import Registry
from skyhive.ports.rollups import RollupKeeper
from skyhive.services.group_consumer import GroupConsumer
from skyhive.services.ingest import encode_for_bus
from skyhive.settings import Settings

log = logging.getLogger(__name__)

# Readings held at most: this many batches (then everything is written). Buckets are written
# whole only if a bucket's span of readings fits: at 7,000 readings/s, 5 s are 35,000 (of
# 80,000 with batches of 2,000); a cap under that writes each bucket in parts, each part
# after the first rewriting the whole document.
MAX_HELD_BATCHES = 40


class Archiver:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        registry: Registry,
        history: TelemetryHistory,
        deadletters: DeadLetterSink,
        rollups: RollupKeeper,
        consumer: str,
        clock: Clock,
    ) -> None:
        self._s = settings
        self._bus = bus
        self._registry = registry
        self._history = history
        self._dead = deadletters
        self._rollups = rollups
        self._clock = clock
        self.consumer = consumer
        self._stream = settings.telemetry_stream
        self._group = settings.archiver_group
        # Reads only: entries are acknowledged here, once their bucket is written.
        self._reader = GroupConsumer(
            bus,
            self._stream,
            self._group,
            consumer,
            settings.archiver_batch_size,
            settings.processor_block_ms,
            settings.group_claim_idle_ms(),
            clock,
        )
        self.claim_idle_ms = self._reader.claim_idle_ms
        self._hold_s = settings.archiver_hold_s
        self._max_held = MAX_HELD_BATCHES * settings.archiver_batch_size
        self._held = HeldBuckets()
        self._skipped: list[str] = []  # invalid entries, acknowledged with the next write
        self._next_keep = 0.0
        self.stored = 0  # readings written (a replayed one counts again)

    def setup(self) -> None:
        self._reader.setup()

    @property
    def held(self) -> int:
        """Readings read from the bus and not written yet."""
        return self._held.readings

    def poll(self) -> int:
        """Read a batch, write the buckets that are due (all of them when the stream had
        nothing new); returns how many entries were read."""
        if self._held.readings >= self._max_held:
            self.flush(everything=True)
        msgs = self._reader.read()
        self._add(msgs)
        self.flush(everything=not msgs)
        self._keep_claimed()
        self._rollups.roll_due(idle=not msgs)
        return len(msgs)

    def archive(self, msgs: list[BusMessage]) -> int:
        """Store a batch at once (with whatever was held); returns how many readings were
        written."""
        self._add(msgs)
        return self.flush(everything=True)

    def close(self) -> None:
        """On the way out: write what is held (if the servers answer; else it is replayed)."""
        try:
            self.flush(everything=True)
        except Exception as exc:
            log.warning(
                "archiver %s: %d held readings left to replay: %s", self.consumer, self.held, exc
            )

    def flush(self, everything: bool = False) -> int:
        """Write the due buckets, then acknowledge their entries; returns the readings
        written. A failed write raises with everything still held (and pending on the bus)."""
        keys = self._held.due(self._clock.monotonic(), self._hold_s, everything)
        buckets, ids = self._held.peek(keys)
        written = 0
        if buckets:
            refused = self._history.store(buckets)
            if refused:
                by_key = {(b.drone_id, seq): t for b in buckets for seq, t in b.readings.items()}
                self._dead.add(
                    [
                        DeadLetter(
                            f"history write refused: {why}", encode_for_bus(by_key[k]), "archiver"
                        )
                        for k, why in refused.items()
                    ]
                )
            self._rollups.note(buckets)
            written = sum(len(b.readings) for b in buckets)
        ids = ids + self._skipped
        if ids:
            self._bus.ack(self._stream, self._group, ids)
        self._held.drop(keys)
        self._skipped = []
        self.stored += written
        return written

    def _add(self, msgs: list[BusMessage]) -> None:
        readings: list[tuple[Telemetry, str]] = []
        for m in msgs:
            if self._held.holds(m.id):
                continue  # ours already (claimed again meanwhile)
            try:
                t = parse_telemetry(m.value, max_bytes=self._s.max_message_bytes * 2)
            except InvalidTelemetry:
                self._skipped.append(m.id)  # dead-lettered by the processor
                continue
            readings.append((t, m.id))
        if not readings:
            return
        known = self._registry.registered(sorted({t.drone_id for t, _ in readings}))
        now = self._clock.monotonic()
        for t, entry_id in readings:
            self._held.add(t, entry_id, not known[t.drone_id], now)

    def _keep_claimed(self) -> None:
        """Held entries are claimed again before they look abandoned (idle ``claim_idle_ms``)."""
        now = self._clock.monotonic()
        every = self.claim_idle_ms / 3000.0
        if now < self._next_keep:
            return
        self._next_keep = now + every
        ids = self._held.held_since(now - every)
        if ids:
            self._bus.keep_claimed(self._stream, self._group, self.consumer, ids)
