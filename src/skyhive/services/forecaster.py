"""The forecaster: retrains each station's demand forecast (orders per hour) from the station
rollups and stores the latest per station. Stations are fitted one after another (a fit is
single-threaded and short; in parallel they would only take the CPU from the live roles).

Per station (``domain/forecast.py``): the training window, or the reason there is none, which
is stored as the station's outcome; a fit on the history before the held-out week, scored
on that week (MASE); then a fit on the whole window for the stored forecast, from the current
hour on. A station whose fit fails keeps its previous forecast and the run goes on."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from skyhive.domain.forecast import (
    DAY_H,
    ForecastConfig,
    ForecastPoint,
    StationForecast,
    TrainingPlan,
    Window,
    accuracy,
    filled,
    plan,
    points,
)
from skyhive.domain.station_rollups import HOUR, hour_floor
from skyhive.ports.clock import Clock
from skyhive.ports.forecasts import DemandModel, ForecastStore
from skyhive.ports.station_hours import StationHoursStore
from skyhive.ports.stations import StationLookup

log = logging.getLogger(__name__)
PROGRESS_EVERY = 10  # stations between progress lines


@dataclass
class ForecastRun:
    """What one run did."""

    stations: int = 0
    trained: int = 0
    skipped: int = 0  # too little history: the reason is stored
    failed: int = 0  # the fit raised: the previous forecast stays
    fits: int = 0
    seconds: float = 0.0
    stopped: bool = False  # a stop came before every station was done


class Forecaster:
    def __init__(
        self,
        config: ForecastConfig,
        history: StationHoursStore,
        store: ForecastStore,
        stations: StationLookup,
        model: DemandModel,
        clock: Clock,
    ) -> None:
        self._config = config
        self._history = history
        self._store = store
        self._stations = stations
        self._model = model
        self._clock = clock

    def run(self, now: datetime | None = None, stop: threading.Event | None = None) -> ForecastRun:
        """Retrain every station (each known station, and any with recorded hours), storing
        each outcome as it is made; a ``stop`` ends the run between two stations."""
        now = now or self._clock.now()
        until = hour_floor(now)
        counts = self._history.orders(until - self._config.training_days * DAY_H * HOUR, until)
        station_ids = sorted(set(self._stations.all()) | set(counts))
        firsts = self._history.first_hours(station_ids)
        run = ForecastRun(stations=len(station_ids))
        started = self._clock.monotonic()
        log.info("forecaster: retraining %d stations up to %s", len(station_ids), until)
        for i, station_id in enumerate(station_ids, 1):
            if stop is not None and stop.is_set():
                run.stopped = True
                break
            p = plan(firsts.get(station_id), now, self._config)
            try:
                forecast = self._forecast(station_id, p, counts.get(station_id, {}), now, run)
            except Exception:
                log.exception("forecaster: %s failed; its previous forecast stays", station_id)
                run.failed += 1
                continue
            self._store.save(forecast)
            if forecast.status == "ok":
                run.trained += 1
            else:
                run.skipped += 1
            if i % PROGRESS_EVERY == 0:
                log.info("forecaster: %d/%d stations", i, len(station_ids))
        run.seconds = round(self._clock.monotonic() - started, 3)
        log.info(
            "forecaster: %d trained, %d without enough history, %d failed, in %.1f s%s",
            run.trained, run.skipped, run.failed, run.seconds,
            " (stopped)" if run.stopped else "",
        )  # fmt: skip
        return run

    def _forecast(
        self,
        station_id: str,
        p: TrainingPlan,
        counts: dict[datetime, float],
        now: datetime,
        run: ForecastRun,
    ) -> StationForecast:
        if p.training is None or p.skip_reason:
            return StationForecast(
                station_id, now, "insufficient_history", reason=p.skip_reason, training=p.training
            )
        values = filled(counts, p.training)
        scored = None
        held: tuple[ForecastPoint, ...] = ()
        if p.holdout is not None:
            n = len(values) - p.holdout.hours
            bands = self._model.fit_predict(p.training.since, values[:n], p.holdout.hours)
            held = points(p.holdout.since, bands)
            scored = accuracy(values[:n], values[n:], [x.yhat for x in held], p.holdout)
            run.fits += 1
        horizon = Window(p.training.until, p.training.until + self._config.horizon_h * HOUR)
        bands = self._model.fit_predict(p.training.since, values, horizon.hours)
        run.fits += 1
        return StationForecast(
            station_id,
            now,
            "ok",
            model=self._model.name,
            model_version=self._model.version(),
            training=p.training,
            training_orders=sum(values),
            horizon=horizon,
            points=points(horizon.since, bands),
            holdout_points=held,
            accuracy=scored,
            accuracy_note=p.holdout_note,
        )
