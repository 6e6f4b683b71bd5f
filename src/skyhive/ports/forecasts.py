"""The forecaster's ports: the demand model (``adapters/prophet_model.py``) and the
``forecasts`` collection (``adapters/forecasts_repo.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from skyhive.domain.forecast import Band, StationForecast


class DemandModel(Protocol):
    name: str

    def version(self) -> str: ...

    def fit_predict(self, start: datetime, values: Sequence[float], horizon_h: int) -> list[Band]:
        """Fit hourly ``values`` (the first is the hour ``start``) and predict the
        ``horizon_h`` hours that follow them."""


class ForecastStore(Protocol):
    def save(self, forecast: StationForecast) -> None:
        """Write a station's latest forecast whole (idempotent)."""
