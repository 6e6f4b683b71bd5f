"""Demand forecasts in MongoDB ``forecasts``: one document per station, ``_id`` its code, the
latest run's outcome written whole by ``$set`` (every field, empty ones included, so nothing
of an earlier run lingers). Documents map to and from the domain's ``StationForecast`` here."""

from __future__ import annotations

from typing import Any, cast

from pymongo.database import Database

from skyhive.adapters.mongo import Document, collection, restore_datetimes
from skyhive.domain.forecast import (
    Accuracy,
    ForecastPoint,
    ForecastStatus,
    StationForecast,
    Window,
)

COLLECTION = "forecasts"


def _window_of(d: Document | None) -> Window | None:
    return None if d is None else Window(d["since"], d["until"])


def _points_of(docs: list[Document] | None) -> tuple[ForecastPoint, ...]:
    return tuple(ForecastPoint(d["hour"], d["yhat"], d["lower"], d["upper"]) for d in docs or ())


def forecast_of(doc: Document) -> StationForecast:
    doc = restore_datetimes(doc, ("trained_at",))
    acc: dict[str, Any] | None = doc.get("accuracy")
    training = doc.get("training")
    model = doc.get("model")
    return StationForecast(
        station_id=str(doc["_id"]),
        trained_at=doc["trained_at"],
        status=cast(ForecastStatus, doc["status"]),
        reason=doc.get("reason", ""),
        model=model["name"] if model else "",
        model_version=model["version"] if model else "",
        training=_window_of(training),
        training_orders=training["orders"] if training else 0.0,
        horizon=_window_of(doc.get("horizon")),
        points=_points_of(doc.get("points")),
        holdout_points=_points_of(doc.get("holdout_points")),
        accuracy=None if acc is None else Accuracy(**acc | {"holdout": _window_of(acc["holdout"])}),
        accuracy_note=doc.get("accuracy_note", ""),
    )


class ForecastsRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._c = collection(db, COLLECTION)

    def save(self, forecast: StationForecast) -> None:
        self._c.update_one({"_id": forecast.station_id}, {"$set": forecast.as_dict()}, upsert=True)

    def get(self, station_id: str) -> StationForecast | None:
        doc = self._c.find_one({"_id": station_id})
        return forecast_of(doc) if doc is not None else None

    def all(self) -> list[StationForecast]:
        return [forecast_of(d) for d in self._c.find().sort("_id", 1)]
