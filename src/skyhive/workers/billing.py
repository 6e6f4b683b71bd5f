"""`skyhive billing schedule`: the scheduled billing now, then every ``SKYHIVE_BILLING_CHECK_S``
(each month billed once it has closed, overdue invoices marked; both idempotent)."""

from __future__ import annotations

import logging
import threading

from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers import runner

log = logging.getLogger(__name__)


def worker(clients: Clients) -> runner.Worker:
    service = clients.billing
    period_s = clients.settings.billing_check_s

    def schedule(stop: threading.Event) -> None:
        try:
            service.scheduled()
        except Exception:
            log.exception("billing failed; trying again in %.0fs", period_s)
        runner.every(period_s, service.scheduled)(stop)

    return runner.Worker(
        "billing", [("billing", schedule)], setup=lambda: clients.db.command("ping")
    )


def run_billing(settings: Settings, stop: threading.Event) -> None:
    runner.run(settings, stop, worker)
