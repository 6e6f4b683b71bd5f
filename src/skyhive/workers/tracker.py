"""`skyhive tracker`: drone events (group ``tracker``), ETAs and silent drones."""

from __future__ import annotations

import threading

from skyhive.services.tracker import DeliveryTracker
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers import runner


def build_tracker(
    clients: Clients, consumer: str, settings: Settings | None = None
) -> DeliveryTracker:
    return DeliveryTracker(
        settings or clients.settings,
        records=clients.deliveries,
        queue=clients.dispatch_queue,
        live=clients.live,
        grounding=clients.grounding,
        fleet=clients.fleet,
        stations=clients.stations,
        bus=clients.bus,
        clock=clients.clock,
        consumer=consumer,
        declarer=clients.flight_declarer,
    )


def worker(clients: Clients) -> runner.Worker:
    tracker = build_tracker(clients, runner.consumer_name())
    name = f"tracker {tracker.consumer}"
    events = runner.loop(name, lambda: tracker.handle_events(block_ms=500), retry_s=(1.0, 1.0))
    return runner.Worker(
        name,
        [("tracker", events), ("monitor", runner.every(1.0, tracker.monitor))],
        setup=tracker.setup,
    )


def run_tracker(settings: Settings, stop: threading.Event) -> None:
    runner.run(settings, stop, worker)
