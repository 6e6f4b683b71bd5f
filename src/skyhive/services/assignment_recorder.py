"""Writes the dispatcher's decisions to MongoDB behind its back.

An assignment is made in Redis (claim, status and a journal entry, atomically) and the drone
is commanded at once; this recorder then copies journaled assignments into the MongoDB record
in bulk. A dispatcher that crashes in between leaves its entries in the Redis journal, and
whichever dispatcher runs next records them. An assignment that lost to a cancel made in
MongoDB meanwhile is undone: its drone is released and recalled to its return station (through
the commands stream, which the dispatchers relay to the drones).

Waiting reasons (why a delivery has no drone yet) are written here too: they are advice for
people, recomputed every second, and have no place on the dispatch path.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from skyhive.domain.commands import return_command
from skyhive.ports.bus import Bus
from skyhive.ports.clock import Clock
from skyhive.ports.delivery_records import DeliveryRecords
from skyhive.ports.dispatch_queue import DispatchQueue
from skyhive.ports.stations import StationLookup

log = logging.getLogger(__name__)

JOURNAL_BATCH = 500


class AssignmentRecorder:
    def __init__(
        self,
        records: DeliveryRecords,
        queue: DispatchQueue,
        stations: StationLookup,
        bus: Bus,
        clock: Clock,
        commands_stream: str,
    ) -> None:
        self._records = records
        self._queue = queue
        self._stations = stations
        self._bus = bus
        self._clock = clock
        self._commands_stream = commands_stream
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._waiting: dict[str, str] = {}

    def notify(self) -> None:
        """New journal entries: record them soon."""
        self._wake.set()

    def note_waiting(self, delivery_id: str, reason: str) -> None:
        with self._lock:
            self._waiting[delivery_id] = reason
        self._wake.set()

    def drain(self) -> int:
        """Record everything journaled so far; returns how many entries were looked at."""
        with self._lock:
            waiting, self._waiting = self._waiting, {}
            if waiting:
                self._records.set_fields_many(
                    {d: {"waiting_reason": r} for d, r in waiting.items()}
                )
            records = self._queue.journal(JOURNAL_BATCH)
            if not records:
                return 0
            lost = self._records.record_journal(records)
        for delivery_id, (drone, status) in lost.items():
            self._recall(delivery_id, drone, status, records[delivery_id])
        if len(records) >= JOURNAL_BATCH:
            self._wake.set()  # more to do
        return len(records)

    def _recall(
        self, delivery_id: str, drone: str, status: str | None, record: dict[str, Any]
    ) -> None:
        log.warning(
            "assignment of %s to %s lost to a concurrent change (now %s); recalling the drone",
            delivery_id,
            drone,
            status,
        )
        station = self._stations.get(str(record["fields"]["return_station"]))
        if station is not None:
            cmd = return_command(station, self._clock.now(), f"delivery {delivery_id} {status}")
            self._bus.publish(self._commands_stream, [(drone, cmd.to_json())])

    def run(self, stop: threading.Event) -> None:
        """Record as entries arrive (and at least every half second, to pick up what a
        crashed dispatcher left)."""
        while not stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self.drain()
            except Exception:
                log.exception("recording assignments failed; retrying")
                stop.wait(1.0)
