"""The demand model: Prophet (the model the Redback seed runs) on hourly counts, with a daily
and a weekly season. PyPI's wheel ships its compiled Stan model, so nothing is downloaded at
run time. Imported on the first fit, not with this module: pandas, Prophet and cmdstanpy take
a second and ~130 MB, which only the forecaster should pay.

Under two weeks of history (Prophet's own rule for its weekly season) the weekly season and
the trend are left out: from a few days neither can be told apart from the other, and the
extrapolated mix ran away (measured on 3 days of synthetic orders: MASE 3 to 21 on the next
week with both, 0.7 to 0.8 with neither)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from skyhive.domain.forecast import WEEK_H, Band, seasonal_period


def _prophet() -> tuple[ModuleType, Any]:
    # Prophet logs an error at import when plotly (its optional plots) is missing; cmdstanpy
    # sets its logger to INFO when imported, then logs every fit's start and end.
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    import pandas
    from prophet import Prophet

    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    return pandas, Prophet


class ProphetModel:
    name = "prophet"

    def __init__(self, interval_width: float, uncertainty_samples: int) -> None:
        self._interval_width = interval_width
        self._samples = uncertainty_samples

    def version(self) -> str:
        _prophet()
        from prophet import __version__

        return str(__version__)

    def fit_predict(self, start: datetime, values: Sequence[float], horizon_h: int) -> list[Band]:
        pd, prophet = _prophet()
        naive = start.astimezone(UTC).replace(tzinfo=None)  # Prophet takes naive times
        history = pd.DataFrame(
            {"ds": pd.date_range(naive, periods=len(values), freq="h"), "y": list(values)}
        )
        first = naive + timedelta(hours=len(values))
        future = pd.DataFrame({"ds": pd.date_range(first, periods=horizon_h, freq="h")})
        # Prophet calls pandas APIs that pandas 3 deprecates: its warnings, not ours.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            weeks = seasonal_period(len(values)) == WEEK_H  # two weeks of history or more
            model = prophet(
                growth="linear" if weeks else "flat",
                daily_seasonality=True,
                weekly_seasonality=weeks,
                yearly_seasonality=False,
                interval_width=self._interval_width,
                uncertainty_samples=self._samples,
            )
            model.fit(history)
            out = model.predict(future)
        return [
            Band(float(r.yhat), float(r.yhat_lower), float(r.yhat_upper))
            for r in out.itertuples(index=False)
        ]
