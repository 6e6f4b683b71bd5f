"""Archiver: telemetry from the bus → history (MongoDB), in bulk.

A consumer group of its own (``SKYHIVE_ARCHIVER_GROUP``) on the telemetry stream, beside the
processor's: the slowest write of the pipeline (a bulk insert per batch) runs at its own pace
and never delays live state or alerts. Inserts are idempotent (``_id`` = drone_id:seq, a
duplicate is a no-op), so duplicates and replays are harmless; invalid messages are the
processor's to dead-letter, and skipped here; a document the server refuses for its content
is dead-lettered with the server's reason.
"""

from __future__ import annotations

import os
import socket
import threading

from skyhive.adapters.deadletters import DeadLetter
from skyhive.adapters.fleet_repo import REGISTERED
from skyhive.domain.telemetry import InvalidTelemetry, Telemetry, parse_telemetry
from skyhive.ports.bus import BusMessage
from skyhive.services.group_consumer import GroupConsumer, run_polling
from skyhive.services.ingest import encode_for_bus
from skyhive.settings import Settings
from skyhive.wiring import Clients


class Archiver:
    def __init__(self, settings: Settings, clients: Clients, consumer: str | None = None) -> None:
        self._s = settings
        self._c = clients
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._group = GroupConsumer(
            clients.bus,
            settings.telemetry_stream,
            settings.archiver_group,
            self.consumer,
            settings.archiver_batch_size,
            settings.processor_block_ms,
            settings.group_claim_idle_ms(),
            redis=clients.redis_bytes,  # keeps a long batch claimed (issue 12)
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
        drones = sorted({t.drone_id for t in readings})
        known = dict(zip(drones, self._c.redis_text.smismember(REGISTERED, drones), strict=True))
        docs = [t.history_document() for t in readings]
        for doc in docs:
            if not known[doc["drone_id"]]:
                doc["unregistered"] = True  # ingested all the same, but flagged
        stored, refused = self._c.telemetry.insert(docs)
        if refused:
            self._c.deadletters.add(
                [
                    DeadLetter(
                        f"history write refused: {why}", encode_for_bus(readings[i]), "archiver"
                    )
                    for i, why in refused.items()
                ]
            )
        self.stored += stored
        return stored


def run_archiver(settings: Settings, stop: threading.Event) -> None:
    clients = Clients(settings)
    archiver = Archiver(settings, clients)
    try:
        run_polling(
            f"archiver {archiver.consumer}",
            archiver.setup,
            archiver.poll,
            settings.archiver_batch_size,
            settings.processor_linger_ms / 1000.0,
            stop,
            lambda: f"{archiver.stored} readings stored",
        )
    finally:
        clients.close()
