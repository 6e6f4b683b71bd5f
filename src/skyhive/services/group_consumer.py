"""One member of a consumer group on a bus stream, processing batches at least once.

Each poll takes, in order: this consumer's own entries left pending by a failed batch, then
entries other consumers left idle too long (they died), then new entries. A batch is
acknowledged only after its handler returns, so a crash or an error replays it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from skyhive.adapters.bus import Bus, BusMessage
from skyhive.services.periodic import retry_until_ready

log = logging.getLogger(__name__)


@dataclass
class GroupConsumer:
    bus: Bus
    stream: str
    group: str
    consumer: str
    batch_size: int
    block_ms: int
    claim_idle_ms: int
    _retry_own: bool = False  # after a failed batch, its entries are still ours and pending

    def setup(self) -> None:
        self.bus.ensure_group(self.stream, self.group)

    def poll(self, handle: Callable[[list[BusMessage]], object]) -> int:
        """Hand one batch to ``handle`` and acknowledge it; returns the batch's size."""
        if self._retry_own:
            msgs = self.bus.consume(
                self.stream, self.group, self.consumer, self.batch_size, 0, own_pending=True
            )
            if msgs:
                return self._run(msgs, handle)
            self._retry_own = False
        msgs = self.bus.claim_stale(
            self.stream, self.group, self.consumer, self.claim_idle_ms, self.batch_size
        )
        if not msgs:
            msgs = self.bus.consume(
                self.stream, self.group, self.consumer, self.batch_size, self.block_ms
            )
        return self._run(msgs, handle) if msgs else 0

    def _run(self, msgs: list[BusMessage], handle: Callable[[list[BusMessage]], object]) -> int:
        self._retry_own = True
        handle(msgs)
        self.bus.ack(self.stream, self.group, [m.id for m in msgs])
        self._retry_own = False
        return len(msgs)


def run_polling(
    name: str,
    setup: Callable[[], object],
    poll: Callable[[], int],
    full_batch: int,
    linger_s: float,
    stop: threading.Event,
    status: Callable[[], str],
) -> None:
    """The loop of a batch-consuming process: wait for the bus, then poll until ``stop``,
    lingering after a small batch (per-batch round trips dominate small batches) and backing
    off after a failure (its entries stay pending and are read again); ``status`` is logged
    every 30 s."""
    if not retry_until_ready(name, setup, stop):
        return
    log.info("%s consuming", name)
    backoff = 0.5
    last_log = time.monotonic()
    while not stop.is_set():
        try:
            n = poll()
            backoff = 0.5
            if 0 < n < full_batch // 4:
                stop.wait(linger_s)
        except Exception:
            log.exception("%s batch failed; retrying in %.1fs", name, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)
        if time.monotonic() - last_log > 30:
            log.info("%s: %s", name, status())
            last_log = time.monotonic()
