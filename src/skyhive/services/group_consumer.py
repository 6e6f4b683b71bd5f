"""One member of a consumer group on a bus stream, processing batches at least once.

Each poll takes, in order: this consumer's own entries left pending by a failed batch, then
entries other consumers left idle for ``claim_idle_ms`` (they died; looked for about once a
second, at once again while there are more), then new entries. A batch is acknowledged only
after its handler returns, so a crash or an error replays it.

While a batch runs, its entries are re-claimed before they are idle half of ``claim_idle_ms``
(``keep_claimed``), so a slow consumer that is alive never has its batch taken over and
processed twice; a dead one stops re-claiming, and its batch is taken over once idle that long.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from skyhive.ports.bus import Bus, BusMessage
from skyhive.ports.clock import Clock

log = logging.getLogger(__name__)

CLAIM_EVERY_S = 1.0  # how often a consumer looks for a dead consumer's entries (at most)


@dataclass
class GroupConsumer:
    bus: Bus
    stream: str
    group: str
    consumer: str
    batch_size: int
    block_ms: int
    claim_idle_ms: int
    clock: Clock
    keep_claimed: bool = False  # re-claim a running batch (for batches that may run long)
    _retry_own: bool = False  # after a failed batch, its entries are still ours and pending
    _next_claim: float = 0.0  # monotonic time of the next look for stale entries
    _kept: KeepClaimed | None = None

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
        msgs = self.read()
        return self._run(msgs, handle) if msgs else 0

    def read(self) -> list[BusMessage]:
        """Entries dead consumers left idle (looked for about once a second), else new ones;
        acknowledged by no one here: for a consumer that acknowledges on its own schedule
        (the archiver, once a bucket is written)."""
        return self._claim_stale() or self.bus.consume(
            self.stream, self.group, self.consumer, self.batch_size, self.block_ms
        )

    def _claim_stale(self) -> list[BusMessage]:
        now = self.clock.monotonic()
        if now < self._next_claim:
            return []
        msgs = self.bus.claim_stale(
            self.stream, self.group, self.consumer, self.claim_idle_ms, self.batch_size
        )
        if msgs:
            log.info(
                "%s took over %d entries of %s idle over %d ms (their consumer died)",
                self.consumer,
                len(msgs),
                self.stream,
                self.claim_idle_ms,
            )
        # A full batch: there may be more to take at once; else look again in a while.
        every = min(CLAIM_EVERY_S, self.claim_idle_ms / 2000.0)
        self._next_claim = now if len(msgs) >= self.batch_size else now + every
        return msgs

    def _run(self, msgs: list[BusMessage], handle: Callable[[list[BusMessage]], object]) -> int:
        self._retry_own = True
        ids = [m.id for m in msgs]
        keeper = self._keeper()
        if keeper is not None:
            keeper.hold(ids)
        try:
            handle(msgs)
        finally:
            if keeper is not None:
                keeper.release()
        self.bus.ack(self.stream, self.group, ids)
        self._retry_own = False
        return len(msgs)

    def _keeper(self) -> KeepClaimed | None:
        if not self.keep_claimed:
            return None
        if self._kept is None:
            every_s = self.claim_idle_ms / 3000.0
            where = (self.stream, self.group, self.consumer)
            self._kept = KeepClaimed(self.bus, where, every_s, self.clock)
        return self._kept


class KeepClaimed:
    """Re-claims the batch a consumer holds every ``every_s`` (resetting the entries' idle
    time), so others do not take it for a dead consumer's. Its thread starts
    with the first batch and ends after a while without one; holding a batch costs a lock,
    not a thread (a thread per batch cost ~0.3 ms)."""

    IDLE_ROUNDS = 10  # rounds without a batch before the thread ends

    def __init__(self, bus: Bus, where: tuple[str, str, str], every_s: float, clock: Clock) -> None:
        self._where = where  # stream, group, consumer
        self._bus = bus
        self._clock = clock
        self._every_s = every_s
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._held_at = 0.0
        self._thread: threading.Thread | None = None

    def hold(self, ids: list[str]) -> None:
        with self._lock:
            self._ids, self._held_at = ids, self._clock.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._keep, name="keep-claimed", daemon=True)
                self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._ids = []

    def _keep(self) -> None:
        stream, group, consumer = self._where
        idle_rounds = 0
        while True:
            time.sleep(self._every_s / 2)
            with self._lock:
                ids = self._ids
                if not ids:
                    idle_rounds += 1
                    if idle_rounds >= self.IDLE_ROUNDS:
                        self._thread = None  # the next hold starts another
                        return
                    continue
                idle_rounds = 0
                if self._clock.monotonic() - self._held_at < self._every_s:
                    continue
                self._held_at = self._clock.monotonic()
            try:  # acknowledged meanwhile: ignored
                self._bus.keep_claimed(stream, group, consumer, ids)
            except Exception as exc:  # the bus is down: nobody can take them meanwhile
                log.debug("could not re-claim %d entries of %s: %s", len(ids), stream, exc)
