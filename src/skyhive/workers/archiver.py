"""`skyhive archiver`: the telemetry stream (group ``archiver``) → history."""

from __future__ import annotations

import threading

from skyhive.services.archiver import Archiver
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers import runner


def build_archiver(clients: Clients, consumer: str) -> Archiver:
    return Archiver(
        clients.settings, clients.bus, clients.fleet, clients.telemetry, clients.deadletters,
        clients.rollups, consumer, clients.clock,
    )  # fmt: skip


def worker(clients: Clients) -> runner.Worker:
    s = clients.settings
    a = build_archiver(clients, runner.consumer_name())
    name = f"archiver {a.consumer}"
    poll = runner.polling(
        name,
        a.poll,
        s.archiver_batch_size,
        s.processor_linger_ms / 1000.0,
        lambda: f"{a.stored} readings stored, {a.held} held",
    )
    # Station hours from the delivery records (services/station_rollups.py), every minute.
    stations = runner.every(s.station_rollups.interval_s, clients.station_rollups.refresh)
    # Each closed day to the Parquet archive before retention removes it (one archiver at a
    # time, on a lease): services/archive_export.py.
    exporter = clients.archive_exporter

    def archive_export() -> None:
        exporter.run_due(clients.clock.now())

    export = runner.every(s.history.archive_check_s, archive_export)
    work = [("archiver", poll), ("station-rollups", stations), ("archive-export", export)]
    return runner.Worker(name, work, setup=a.setup, close=a.close, bulk=True)


def run_archiver(settings: Settings, stop: threading.Event) -> None:
    runner.run(settings, stop, worker)
