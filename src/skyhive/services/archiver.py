"""Archiver: telemetry from the bus → history (MongoDB), in bulk.

A consumer group of its own (``SKYHIVE_ARCHIVER_GROUP``) on the telemetry stream, beside the
processor's: the slowest write of the pipeline (a bulk insert per batch) runs at its own pace
and never delays live state or alerts. Inserts are idempotent (``_id`` = drone_id:seq, a
duplicate is a no-op), so duplicates and replays are harmless; invalid messages are the
processor's to dead-letter, and skipped here; a document the server refuses for its content
is dead-lettered with the server's reason.
"""

from __future__ import annotations

from skyhive.domain.telemetry import InvalidTelemetry, Telemetry, parse_telemetry
from skyhive.ports.bus import Bus, BusMessage
from skyhive.ports.clock import Clock
from skyhive.ports.deadletters import DeadLetter, DeadLetterSink
from skyhive.ports.history import TelemetryHistory
from skyhive.ports.registry import Registry
from skyhive.services.group_consumer import GroupConsumer
from skyhive.services.ingest import encode_for_bus
from skyhive.settings import Settings


class Archiver:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        registry: Registry,
        history: TelemetryHistory,
        deadletters: DeadLetterSink,
        consumer: str,
        clock: Clock,
    ) -> None:
        self._s = settings
        self._registry = registry
        self._history = history
        self._dead = deadletters
        self.consumer = consumer
        self._group = GroupConsumer(
            bus,
            settings.telemetry_stream,
            settings.archiver_group,
            consumer,
            settings.archiver_batch_size,
            settings.processor_block_ms,
            settings.group_claim_idle_ms(),
            clock,
            keep_claimed=True,  # a long batch is not taken for a dead consumer's (issue 12)
        )
        self.stored = 0

    def setup(self) -> None:
        self._group.setup()

    def poll(self) -> int:
        return self._group.poll(self.archive)

    def archive(self, msgs: list[BusMessage]) -> int:
        """Store a batch; returns how many readings were new."""
        readings: list[Telemetry] = []
        for m in msgs:
            try:
                readings.append(parse_telemetry(m.value, max_bytes=self._s.max_message_bytes * 2))
            except InvalidTelemetry:
                continue  # dead-lettered by the processor
        if not readings:
            return 0
        known = self._registry.registered(sorted({t.drone_id for t in readings}))
        docs = [t.history_document() for t in readings]
        for doc in docs:
            if not known[doc["drone_id"]]:
                doc["unregistered"] = True  # ingested all the same, but flagged
        stored, refused = self._history.insert(docs)
        if refused:
            self._dead.add(
                [
                    DeadLetter(
                        f"history write refused: {why}", encode_for_bus(readings[i]), "archiver"
                    )
                    for i, why in refused.items()
                ]
            )
        self.stored += stored
        return stored
