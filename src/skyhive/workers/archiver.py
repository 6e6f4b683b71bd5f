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
        consumer, clients.clock,
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
    return runner.Worker(name, [("archiver", poll)], setup=a.setup, close=a.close, bulk=True)


def run_archiver(settings: Settings, stop: threading.Event) -> None:
    runner.run(settings, stop, worker)
