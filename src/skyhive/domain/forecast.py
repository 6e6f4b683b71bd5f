"""Per-station demand forecasts (orders per hour): what a station is trained on, how the
accuracy is measured, and what is kept of a run. Pure: the model is behind a port
(``ports/forecasts.DemandModel``, Prophet in ``adapters/prophet_model.py``).

Training data is a station's orders per hour (``station_hours``) over the last
``training_days``, from its first recorded hour on; an hour without a record is zero orders.
The current hour, still running, is never trained on: the forecast starts with it.

Accuracy is MASE on the last ``holdout_days`` held out: the model is fitted on the history
before them, forecasts them, and its mean absolute error is divided by that of the seasonal
naive forecast (the same hour a week before, or a day before when the history is shorter than
two weeks) over the training part. MAPE divides each error by the actual count, and a
station's night hours have zero orders: it is undefined there and explodes on the ones and
twos around them. MASE stays defined with zeros, is comparable across busy and quiet
stations, and reads plainly: under 1, better than repeating last week.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from skyhive.domain.station_rollups import HOUR, hour_floor, hours_between

DAY_H = 24
WEEK_H = 7 * DAY_H
ForecastStatus = Literal["ok", "insufficient_history"]


class ForecastConfig(BaseModel):
    """The forecaster role (``SKYHIVE_FORECAST__*``, e.g. ``SKYHIVE_FORECAST__HORIZON_H=48``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_s: float = Field(default=3600.0, gt=0)  # retrain every station this often
    start_delay_s: float = Field(default=30.0, ge=0)  # first run after the role starts
    horizon_h: int = Field(default=48, ge=1, le=24 * 14)
    training_days: int = Field(default=30, ge=2, le=366)
    holdout_days: int = Field(default=7, ge=1, le=28)
    min_history_days: int = Field(default=2, ge=1, le=365)
    interval_width: float = Field(default=0.8, gt=0.5, lt=1)  # of the lower/upper band
    uncertainty_samples: int = Field(default=300, ge=50, le=5000)  # draws behind the band

    @model_validator(mode="after")
    def _fits(self) -> ForecastConfig:
        if self.min_history_days > self.training_days:
            raise ValueError("min_history_days must not exceed training_days")
        return self


@dataclass(frozen=True, slots=True)
class Window:
    """Hours ``[since, until)``."""

    since: datetime
    until: datetime

    @property
    def hours(self) -> int:
        return int((self.until - self.since) / HOUR)

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "hours": self.hours}


@dataclass(frozen=True, slots=True)
class Band:
    """A model's prediction for one hour: its estimate and interval."""

    yhat: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    hour: datetime
    yhat: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class Accuracy:
    """On the held-out week: MASE (None when the naive forecast makes no error, e.g. a station
    with no orders at all, and ``note`` says so), the model's and the naive forecast's mean
    absolute errors, and the season of the naive forecast."""

    holdout: Window
    mase: float | None
    mae: float
    naive_mae: float
    period_h: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"holdout": self.holdout.as_dict()}


@dataclass(frozen=True, slots=True)
class TrainingPlan:
    """What a station is trained on, or why it is not (``skip_reason``)."""

    training: Window | None
    holdout: Window | None = None  # the last days, held out for the accuracy
    skip_reason: str = ""
    holdout_note: str = ""  # why there is no holdout


@dataclass(frozen=True, slots=True)
class StationForecast:
    """One run's outcome for a station: its forecast, or why it has none."""

    station_id: str
    trained_at: datetime
    status: ForecastStatus
    reason: str = ""
    model: str = ""
    model_version: str = ""
    training: Window | None = None
    training_orders: float = 0.0
    horizon: Window | None = None
    points: tuple[ForecastPoint, ...] = ()
    holdout_points: tuple[ForecastPoint, ...] = ()  # the held-out week as forecast
    accuracy: Accuracy | None = None
    accuracy_note: str = ""  # why there is no accuracy

    def as_dict(self) -> dict[str, Any]:
        """As plain data (dates stay datetimes): what is stored, and served."""
        training = self.training
        return {
            "station_id": self.station_id,
            "status": self.status,
            "reason": self.reason,
            "trained_at": self.trained_at,
            "model": {"name": self.model, "version": self.model_version} if self.model else None,
            "training": None
            if training is None
            else training.as_dict() | {"orders": self.training_orders},
            "horizon": None if self.horizon is None else self.horizon.as_dict(),
            "points": [asdict(p) for p in self.points],
            "holdout_points": [asdict(p) for p in self.holdout_points],
            "accuracy": None if self.accuracy is None else self.accuracy.as_dict(),
            "accuracy_note": self.accuracy_note,
        }


def plan(first_hour: datetime | None, now: datetime, config: ForecastConfig) -> TrainingPlan:
    """The training window of a station whose first recorded hour is ``first_hour``: the last
    ``training_days`` before the current hour, from that hour on; with a holdout when the
    history left before it still has ``min_history_days``."""
    until = hour_floor(now)
    need_h = config.min_history_days * DAY_H
    if first_hour is None or first_hour >= until:
        reason = "no orders recorded at this station before the current hour"
        return TrainingPlan(None, skip_reason=reason)
    since = max(until - config.training_days * DAY_H * HOUR, hour_floor(first_hour))
    training = Window(since, until)
    if training.hours < need_h:
        return TrainingPlan(
            training,
            skip_reason=f"{training.hours} h of history; a forecast needs {need_h} h "
            f"(SKYHIVE_FORECAST__MIN_HISTORY_DAYS={config.min_history_days})",
        )
    holdout_h = config.holdout_days * DAY_H
    if training.hours < holdout_h + need_h:
        note = (
            f"{training.hours} h of history: the accuracy needs {holdout_h} h held out after "
            f"at least {need_h} h of training"
        )
        return TrainingPlan(training, holdout_note=note)
    return TrainingPlan(training, holdout=Window(until - holdout_h * HOUR, until))


def filled(counts: Mapping[datetime, float], window: Window) -> list[float]:
    """Orders per hour over ``window``, zero for an hour without a record."""
    return [float(counts.get(h, 0.0)) for h in hours_between(window.since, window.until)]


def seasonal_period(train_hours: int) -> int:
    """The naive forecast's season: a week once two weeks are there to compare, else a day."""
    return WEEK_H if train_hours >= 2 * WEEK_H else DAY_H


def mean_abs(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def accuracy(
    train: Sequence[float], actual: Sequence[float], predicted: Sequence[float], holdout: Window
) -> Accuracy:
    """MASE of ``predicted`` against ``actual``, scaled by the in-sample error of the seasonal
    naive forecast over ``train`` (Hyndman & Koehler, 2006)."""
    period = seasonal_period(len(train))
    mae = mean_abs(actual, predicted)
    if len(train) <= period:
        return Accuracy(holdout, None, mae, 0.0, period, "training shorter than one season")
    naive = mean_abs(train[period:], train[:-period])
    if naive == 0:
        note = "the naive forecast is exact on the training data (no orders, or none varying)"
        return Accuracy(holdout, None, mae, naive, period, note)
    return Accuracy(holdout, mae / naive, mae, naive, period)


def points(start: datetime, bands: Sequence[Band]) -> tuple[ForecastPoint, ...]:
    """Hourly points from ``start``: clipped at zero (orders are never negative) and ordered
    ``lower <= yhat <= upper`` (a sampled interval can miss the estimate by a hair)."""
    out = []
    for i, b in enumerate(bands):
        yhat = max(b.yhat, 0.0)
        out.append(
            ForecastPoint(start + i * HOUR, yhat, min(max(b.lower, 0.0), yhat), max(b.upper, yhat))
        )
    return tuple(out)
