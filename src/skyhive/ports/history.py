"""The telemetry history port: where the archiver keeps readings (``adapters/telemetry_repo.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class TelemetryHistory(Protocol):
    def insert(self, docs: Sequence[dict[str, Any]]) -> tuple[int, dict[int, str]]:
        """Store documents, a duplicate ``_id`` being a no-op; returns how many were new and,
        by index, those the store refused for their content (with its reason)."""
