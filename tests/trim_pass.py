"""A trim pass of the bus run now, whoever ran the last one (``IngestGate`` runs them on its own
schedule; a test wants the verdict on what it just did)."""

from __future__ import annotations

from skyhive.adapters.stream_trimmer import LOCK
from skyhive.domain.backpressure import Backpressure
from skyhive.wiring import Clients


def fresh_pass(c: Clients) -> Backpressure:
    c.redis_bytes.delete(LOCK)
    state = c.stream_trimmer.run_once()
    assert state is not None
    return state
