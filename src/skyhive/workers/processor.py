"""`skyhive processor --lane ...`: the telemetry stream (group ``processor``) → live state
and alerts.

The routine lane takes all telemetry and runs the offline watch; the urgent lane takes the
emergencies, on their own stream, judged as soon as they arrive, never behind a backlog of
routine telemetry (the routine lane later finds them seen and skips them). ``all`` runs both
in one process; `skyhive up` runs them apart, so the urgent lane never waits for the routine
one's share of the interpreter.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import Literal

from skyhive.services.offline_watch import OfflineWatch
from skyhive.services.processor import Processor
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers import runner

Lane = Literal["all", "routine", "urgent"]

SPEC_REFRESH_S = 5.0  # registry changes reach the rules within this (plus the cache's TTL)


def build_processor(
    clients: Clients, consumer: str, *, stream: str | None = None, specs: SpecCache | None = None
) -> Processor:
    """A processor on the telemetry stream (``stream``: another, the urgent one)."""
    return Processor(
        clients.settings,
        bus=clients.bus,
        fleet=clients.fleet_state,
        engine=clients.alert_engine,
        specs=specs or SpecCache(clients.fleet, clients.clock),
        geofences=clients.geofences,
        stations=clients.stations,
        deadletters=clients.deadletters,
        clock=clients.clock,
        consumer=consumer,
        stream=stream,
        conformance=clients.conformance,
    )


def _lane(proc: Processor, name: str, linger_s: float) -> tuple[str, runner.Work]:
    t = proc.totals

    def status() -> str:
        return (
            f"{t.received} received, {t.duplicates} duplicates, {t.invalid} invalid, "
            f"{t.alert_changes} alert changes"
        )

    poll = runner.polling(f"{name} {proc.consumer}", proc.poll, proc.batch_size, linger_s, status)
    return name, poll


def worker(clients: Clients, lane: Lane) -> runner.Worker:
    s = clients.settings
    consumer = runner.consumer_name()
    specs = SpecCache(clients.fleet, clients.clock)
    lanes: list[Processor] = []
    work: list[tuple[str, runner.Work]] = []
    helpers: list[tuple[str, runner.Work]] = [
        ("specs", runner.every(SPEC_REFRESH_S, specs.refresh))
    ]
    if lane != "urgent":
        routine = build_processor(clients, consumer, specs=specs)
        watch = OfflineWatch(
            s, fleet=clients.fleet_state, engine=clients.alert_engine, specs=specs,
            clock=clients.clock,
        )  # fmt: skip
        lanes.append(routine)
        work.append(_lane(routine, "processor", s.processor_linger_ms / 1000.0))
        helpers.append(("offline-watch", runner.every(s.alerts_sweep_s, watch.sweep)))
        conformance = clients.conformance
        if conformance is not None:
            stale = partial(conformance.sweep, s.alerts_sweep_s)
            helpers.append(("stale-watch", runner.every(s.alerts_sweep_s, stale)))
    if lane != "routine":
        urgent = build_processor(clients, consumer, stream=s.urgent_stream, specs=specs)
        lanes.append(urgent)
        work.append(_lane(urgent, "urgent lane", 0.0))

    def setup() -> None:
        for proc in lanes:
            proc.setup()

    return runner.Worker(f"processor {consumer}", work + helpers, setup=setup)


def run_processor(settings: Settings, stop: threading.Event, lane: Lane = "all") -> None:
    runner.run(settings, stop, lambda clients: worker(clients, lane))
