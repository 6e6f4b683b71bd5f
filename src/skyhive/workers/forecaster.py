"""`skyhive forecaster`: every station's demand forecast (``services/forecaster.py``),
retrained ``SKYHIVE_FORECAST__START_DELAY_S`` after the start (the other roles first), then
every ``SKYHIVE_FORECAST__INTERVAL_S``. A stop ends a run between two stations; `--once`
retrains now and exits."""

from __future__ import annotations

import logging
import threading

from skyhive.services.forecaster import ForecastRun
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers import runner

log = logging.getLogger(__name__)


def worker(clients: Clients) -> runner.Worker:
    config = clients.settings.forecast
    forecaster = clients.forecaster

    def schedule(stop: threading.Event) -> None:
        def retrain() -> ForecastRun:
            return forecaster.run(stop=stop)

        if stop.wait(config.start_delay_s):
            return
        try:
            retrain()
        except Exception:
            log.exception("forecaster failed; trying again in %.0fs", config.interval_s)
        runner.every(config.interval_s, retrain)(stop)

    # Bulk work: on a machine short of CPU, the fits yield to dispatch, alerts and the API.
    return runner.Worker(
        "forecaster",
        [("forecaster", schedule)],
        setup=lambda: clients.db.command("ping"),
        bulk=True,
    )


def run_forecaster(settings: Settings, stop: threading.Event) -> None:
    runner.run(settings, stop, worker)


def retrain_once(settings: Settings) -> ForecastRun:
    """One run now (`skyhive forecaster --once`)."""
    clients = Clients(settings)
    try:
        return clients.forecaster.run()
    finally:
        clients.close()
