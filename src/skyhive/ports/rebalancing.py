"""The rebalancer's ports: the latest demand forecasts (``adapters/forecasts_repo.py``) and
the log of moves (``adapters/rebalance_moves_repo.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from skyhive.domain.forecast import StationForecast
from skyhive.domain.rebalance import Move


class ForecastReader(Protocol):
    def all(self) -> list[StationForecast]:
        """Every station's latest forecast."""


class MoveLog(Protocol):
    def record(self, moves: Sequence[Move], at: datetime) -> None: ...

    def since(self, at: datetime, limit: int = 1000) -> list[dict[str, Any]]:
        """Moves made at or after ``at``, newest first."""
