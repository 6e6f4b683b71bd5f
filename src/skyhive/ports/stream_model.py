"""What the ``models`` role needs besides the bus and the alerting engine: where each model's
per-drone state is kept across restarts (``adapters/model_state_repo.py``, MongoDB
``model_state``) and where its counters go for ``/metrics`` (``adapters/model_stats.py``,
Redis: the API is another process)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SavedDrone:
    """A model's memory of one drone: the last reading it saw (event time in ms, seq) and
    what the model itself keeps (``StreamModel.state``)."""

    seen: tuple[int, int]
    state: dict[str, Any] | None


class ModelStates(Protocol):
    def load(self, model: str, drone_ids: Sequence[str]) -> dict[str, SavedDrone]:
        """The saved drones among ``drone_ids``."""

    def save(self, model: str, drones: Mapping[str, SavedDrone], at: datetime) -> None:
        """Replace each drone's saved memory (idempotent)."""


@dataclass(frozen=True, slots=True)
class ModelCounts:
    """What a model did since the last report (counters) and its values now (gauges)."""

    counts: Mapping[str, int]
    values: Mapping[str, float]


class ModelStats(Protocol):
    def report(self, model: str, stats: ModelCounts) -> None:
        """Add the counts to the model's totals; set its values."""

    def read(self, models: Sequence[str]) -> dict[str, ModelCounts]:
        """Each model's totals and last values (models never reported are absent)."""
