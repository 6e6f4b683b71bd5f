"""The dashboard's forecast panel (``static/js/forecast.js``) in headless Chromium: a stored
forecast drawn against the actual orders per hour, over the real API and stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dashboard_stack import Stack
from playwright.sync_api import Page, expect

from skyhive.domain.forecast import Accuracy, ForecastPoint, StationForecast, Window
from skyhive.domain.station_rollups import StationHour, hour_floor

HOUR = timedelta(hours=1)


def seed(stack: Stack) -> int:
    """A forecast for 12TH from the current hour, its held-out week, and two days of actual
    orders (hours with an order only); returns the orders within the panel's 192 hours."""
    current = hour_floor(datetime.now(UTC))
    week = Window(current - 168 * HOUR, current)
    ahead = [ForecastPoint(current + i * HOUR, 3.0, 1.0, 5.0) for i in range(48)]
    held = tuple(ForecastPoint(week.since + i * HOUR, 2.0, 1.0, 3.0) for i in range(168))
    stack.clients.forecasts.save(
        StationForecast(
            "12TH",
            current,
            "ok",
            model="prophet",
            model_version="1",
            training=Window(current - 720 * HOUR, current),
            training_orders=900.0,
            horizon=Window(current, current + 48 * HOUR),
            points=tuple(ahead),
            holdout_points=held,
            accuracy=Accuracy(week, 0.8, 1.2, 1.5, 168),
        )
    )
    hours = [StationHour("12TH", current - i * HOUR, orders=i % 3) for i in range(1, 49)]
    stack.clients.station_hours.replace(
        current - 48 * HOUR, current, [h for h in hours if h.orders]
    )
    return sum(h.orders for h in hours)


def test_the_panel_draws_the_forecast_against_actual_orders(
    stack: Stack, open_page: Callable[..., Page], console_errors: list[str]
) -> None:
    orders = seed(stack)
    page = open_page()
    page.locator("#tab-analytics").click()
    summary = page.locator("#forecast-panel [role=status]")
    expect(summary).to_contain_text("12TH: 144 orders expected in the next 48 h")
    expect(summary).to_contain_text("MASE 0.80 on the held-out week")
    expect(page.locator("#forecast-panel select")).to_have_value("12TH")
    drawn = page.evaluate(
        "() => window.skyhive.forecast.chart.data.datasets.map(d => d.data.filter(v => v !== null))"
    )
    actual, holdout, forecast, upper, lower = drawn
    assert len(actual) == 192 and sum(actual) == orders
    assert len(holdout) == 168 and set(holdout) == {2.0}
    assert forecast == [3.0] * 48 and upper == [5.0] * 48 and lower == [1.0] * 48
    page.locator("#forecast-panel canvas").scroll_into_view_if_needed()  # for the screenshot
    assert console_errors == []
