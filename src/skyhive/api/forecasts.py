"""Demand forecasts per station (the `forecaster` role, MongoDB `forecasts`): the latest run's
summary for every station, and one station's forecast beside its actual orders per hour
(`station_hours`), which is what the dashboard draws."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from skyhive.api.errors import ApiError
from skyhive.api.fields import Finite, Items, PathModel, QueryModel
from skyhive.api.operation import VIEWER, operation
from skyhive.api.responses import current_clients, items_response, json_response
from skyhive.domain.forecast import StationForecast, Window, filled
from skyhive.domain.station_rollups import HOUR, hour_floor

bp = APIBlueprint(
    "forecasts", __name__, url_prefix="/api/v1/forecasts", abp_tags=[Tag(name="forecasts")]
)
MAX_ACTUAL_H = 24 * 90


class StationPath(PathModel):
    station_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,16}$", description="A station's code.")


class ForecastQuery(QueryModel):
    hours: int = Field(
        default=24 * 8,
        ge=1,
        le=MAX_ACTUAL_H,
        description="Actual orders per hour for this many hours, up to the current one "
        "(default 192: the held-out week and the day after it).",
    )


class WindowView(BaseModel):
    since: datetime
    until: datetime = Field(description="Exclusive.")
    hours: int = Field(ge=0)


class TrainingView(WindowView):
    orders: Finite = Field(ge=0, description="Orders in the training window.")


class PointView(BaseModel):
    hour: datetime
    yhat: Finite = Field(ge=0, description="Orders expected in the hour.")
    lower: Finite = Field(ge=0)
    upper: Finite = Field(ge=0)


class AccuracyView(BaseModel):
    """On the held-out week: the model fitted on the history before it."""

    mase: Finite | None = Field(
        description="Mean absolute scaled error: the model's mean absolute error over that "
        "of the seasonal naive forecast (under 1: better than it); null when undefined."
    )
    mae: Finite
    naive_mae: Finite
    period_h: int = Field(description="The naive forecast's season: 168 (a week) or 24.")
    holdout: WindowView
    note: str


class ModelView(BaseModel):
    name: str
    version: str


class ForecastSummary(BaseModel):
    station_id: str
    status: Literal["ok", "insufficient_history", "not_trained"]
    reason: str = Field(description="Why there is no forecast.")
    trained_at: datetime | None
    model: ModelView | None
    training: TrainingView | None
    horizon: WindowView | None
    accuracy: AccuracyView | None
    accuracy_note: str = Field(description="Why there is no accuracy.")
    next_hour: PointView | None = Field(description="The first point: the current hour.")
    horizon_orders: Finite | None = Field(description="Orders expected over the horizon.")


class ActualView(BaseModel):
    hour: datetime
    orders: int = Field(ge=0)


class StationForecastView(ForecastSummary):
    points: list[PointView] = Field(description="Hourly, from the current hour on.")
    holdout_points: list[PointView] = Field(
        description="The held-out week as the model forecast it, to compare with `actual`."
    )
    actual: list[ActualView] = Field(description="Orders per hour, oldest first.")


def summary(f: StationForecast) -> dict[str, Any]:
    """A run's outcome without its points: the first point and the horizon's total instead."""
    out = f.as_dict()
    del out["points"], out["holdout_points"]
    first = asdict(f.points[0]) if f.points else None
    total = sum(p.yhat for p in f.points) if f.points else None
    return out | {"next_hour": first, "horizon_orders": total}


def _not_trained(station_id: str) -> dict[str, Any]:
    empty = ("trained_at", "model", "training", "horizon", "accuracy", "next_hour")
    return {
        "station_id": station_id,
        "status": "not_trained",
        "reason": "the forecaster has not run for this station yet",
        "accuracy_note": "",
        "horizon_orders": None,
        **dict.fromkeys(empty),
    }


@operation(bp.get, "", access=VIEWER, ok=Items[ForecastSummary])
def list_forecasts() -> Response:
    """Every station's latest forecast run, by station: its status (or why it has none), the
    training window, the accuracy on the held-out week and the next hour's expected orders."""
    return items_response([summary(f) for f in current_clients().forecasts.all()])


@operation(bp.get, "/<station_id>", access=VIEWER, ok=StationForecastView, errors=(404,))
def get_forecast(path: StationPath, query: ForecastQuery) -> Response:
    """A station's forecast (hourly points from the current hour, with their interval), the
    held-out week as forecast, and the actual orders per hour of the last `hours` hours up to
    the current one (zero where none were recorded). A known station not trained yet answers
    `status: not_trained`, with its actual orders; an unknown one is a 404."""
    clients = current_clients()
    station_id = path.station_id
    forecast = clients.forecasts.get(station_id)
    if forecast is None and clients.stations.get(station_id) is None:
        raise ApiError(404, f"unknown station {station_id!r}", "station_id")
    until = hour_floor(clients.clock.now()) + HOUR
    recent = Window(until - query.hours * HOUR, until)
    recorded = clients.station_hours.of_station(station_id, recent.since, recent.until)
    orders = filled({h.hour: h.orders for h in recorded}, recent)
    actual = [{"hour": recent.since + i * HOUR, "orders": int(n)} for i, n in enumerate(orders)]
    if forecast is None:
        body = _not_trained(station_id) | {"points": [], "holdout_points": []}
    else:
        body = summary(forecast) | {
            "points": [asdict(p) for p in forecast.points],
            "holdout_points": [asdict(p) for p in forecast.holdout_points],
        }
    return json_response(body | {"actual": actual})
