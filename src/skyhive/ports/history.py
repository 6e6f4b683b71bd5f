"""The telemetry history port: where the archiver keeps readings (``adapters/telemetry_repo.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from skyhive.domain.history import Bucket


class TelemetryHistory(Protocol):
    def store(self, buckets: Sequence[Bucket]) -> dict[tuple[str, int], str]:
        """Write these buckets' readings idempotently (a reading written again is a no-op),
        one write per bucket; returns the readings the store refused for their content,
        (drone_id, seq) → its reason, so one bad reading never blocks the rest. Connection
        errors raise."""
