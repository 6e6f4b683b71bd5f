"""`skyhive models`: the enabled stream models (``SKYHIVE_MODELS__ENABLED``), each on a thread
of its own reading the telemetry stream in its own group (``model-<name>``)."""

from __future__ import annotations

import logging
import threading

from skyhive.models.plugins import load_enabled
from skyhive.services.model_runner import ModelRunner
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers import runner
from skyhive.workers.processor import SPEC_REFRESH_S

log = logging.getLogger(__name__)


def build_runners(clients: Clients, consumer: str, specs: SpecCache) -> list[ModelRunner]:
    return [
        ModelRunner(
            clients.settings,
            model,
            bus=clients.bus,
            engine=clients.alert_engine,
            specs=specs,
            states=clients.model_states,
            stats=clients.model_stats,
            clock=clients.clock,
            consumer=consumer,
        )
        for model in load_enabled(clients.settings.models)
    ]


def worker(clients: Clients) -> runner.Worker:
    s = clients.settings
    consumer = runner.consumer_name()
    specs = SpecCache(clients.fleet, clients.clock)
    models = build_runners(clients, consumer, specs)
    if not models:
        log.info("no stream models enabled (SKYHIVE_MODELS__ENABLED): nothing to run")
    linger_s = s.processor_linger_ms / 1000.0
    work = [
        (f"model {m.name}", runner.polling(f"model {m.name} {consumer}", m.poll, m.batch_size, linger_s, m.status))
        for m in models
    ]  # fmt: skip
    work.append(("specs", runner.every(SPEC_REFRESH_S, specs.refresh)))

    def setup() -> None:
        for m in models:
            m.setup()

    def close() -> None:
        for m in models:
            m.close()

    # Learning may wait: when the CPU is short, alerts, dispatch and live state go first.
    return runner.Worker(f"models {consumer}", work, setup=setup, close=close, bulk=True)


def run_models(settings: Settings, stop: threading.Event) -> None:
    runner.run(settings, stop, worker)
