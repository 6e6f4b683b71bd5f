"""`skyhive notifier`: alert changes (group ``notifier``) and reminders to the channels."""

from __future__ import annotations

import logging
import threading

from skyhive.adapters.apprise_sender import AppriseSender
from skyhive.services.notifier import MAX_IN_FLIGHT, Notifier
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers import runner

log = logging.getLogger(__name__)


def build_notifier(
    clients: Clients,
    consumer: str,
    *,
    claim_idle_ms: int | None = None,
    max_in_flight: int = MAX_IN_FLIGHT,
) -> Notifier:
    s = clients.settings
    return Notifier(
        s,
        bus=clients.bus,
        alerts=clients.alerts,
        reminders=clients.reminders,
        records=clients.notifications,
        marks=clients.send_marks,
        deadletters=clients.deadletters,
        clock=clients.clock,
        sender=lambda ch: AppriseSender(ch.url, s.notify.timeout_s),
        consumer=consumer,
        claim_idle_ms=claim_idle_ms,
        max_in_flight=max_in_flight,
    )


def worker(clients: Clients) -> runner.Worker:
    s = clients.settings
    notifier = build_notifier(clients, runner.consumer_name())

    def consume(stop: threading.Event) -> None:
        if not s.notify.channels:
            log.warning("no notification channels configured (SKYHIVE_NOTIFY__CHANNELS)")
        log.info(
            "notifier %s consuming %s with %d channel(s)",
            notifier.consumer, s.alerts_stream, len(s.notify.channels),
        )  # fmt: skip
        notifier.run(stop)

    return runner.Worker(
        f"notifier {notifier.consumer}",
        [("notifier", consume)],
        setup=notifier.setup,
        close=notifier.join,
    )


def run_notifier(settings: Settings, stop: threading.Event) -> None:
    runner.run(settings, stop, worker)
