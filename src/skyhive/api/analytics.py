"""Fleet analytics over a window (``services/analytics.py``): deliveries per station and hour,
on-time rate, delivery-time percentiles, failure and cancellation reasons, drone utilisation,
energy per km by model, alerts by type and station. The window is ``since`` (inclusive) to
``until`` (exclusive), by default the last 7 days, at most 92; ``station`` narrows the
answer to a pickup station (deliveries) or to the drones based there (utilisation, energy,
alerts). Viewers and up: fleet-wide figures, no customer's records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from skyhive.api.errors import ApiError
from skyhive.api.fields import Finite, QueryModel, Timestamp
from skyhive.api.operation import VIEWER, operation
from skyhive.api.responses import current_clients, json_response
from skyhive.domain.analytics import MAX_WINDOW, Span, WindowError
from skyhive.services.analytics import Analytics, UnknownStation

bp = APIBlueprint(
    "analytics", __name__, url_prefix="/api/v1/analytics", abp_tags=[Tag(name="analytics")]
)

Seconds = Finite
Share = Annotated[
    Finite | None,
    Field(ge=0, le=1, description="Of the observed seconds; null when none were observed."),
]


class AnalyticsQuery(QueryModel):
    since: Timestamp | None = Field(
        default=None, description="Inclusive. Default: a week before `until`."
    )
    until: Timestamp | None = Field(default=None, description="Exclusive. Default: now.")
    station: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,16}$",
        description="Only this station: deliveries picked up there, or the drones based there "
        "(utilisation, energy, alerts). An unknown code is a 404.",
    )


class AnalyticsWindow(BaseModel):
    since: datetime
    until: datetime = Field(description="Exclusive.")


class Answer(BaseModel):
    window: AnalyticsWindow = Field(
        description=f"As asked, or by default; at most {MAX_WINDOW.days} days."
    )
    station: str | None = Field(description="The station filter, if any.")


class StationTotals(BaseModel):
    station: str
    orders: int = Field(ge=0, description="Ordered in the window.")
    pickups: int = Field(ge=0, description="Of those, picked up (whenever).")
    assigned: int = Field(ge=0, description="Of those, assigned a drone (whenever).")
    pads: int | None = Field(description="The station's pads; null if it is not known.")
    mean_wait_s: Seconds | None = Field(description="Order to first assignment.")
    max_wait_s: Seconds | None
    peak_pickups_per_pad: Finite | None = Field(description="In the busiest hour.")


class StationHourView(BaseModel):
    hour: datetime = Field(description="The hour (UTC) the orders were made or picked up in.")
    station: str
    orders: int = Field(ge=0, description="Ordered in this hour.")
    pickups: int = Field(ge=0, description="Picked up in this hour.")
    pads: int | None
    pickups_per_pad: Finite | None
    mean_wait_s: Seconds | None = Field(description="Of the orders made in this hour.")
    max_wait_s: Seconds | None


class StationsAnswer(Answer):
    """Deliveries ordered in the window, per pickup station; hours with no order and no
    pickup are left out."""

    stations: list[StationTotals]
    hours: list[StationHourView]


class OnTimeView(BaseModel):
    delivered: int = Field(ge=0)
    with_eta: int = Field(ge=0, description="Delivered with an ETA given at assignment.")
    on_time: int = Field(ge=0, description="Delivered by that ETA.")
    on_time_rate: Finite | None = Field(ge=0, le=1, description="`on_time / with_eta`.")


class StationOnTime(OnTimeView):
    station: str


class OnTimeAnswer(Answer):
    """Orders of the window delivered by the ETA the dispatcher gave at assignment."""

    overall: OnTimeView
    stations: list[StationOnTime]


class TimesView(BaseModel):
    deliveries: int = Field(ge=0)
    p50_s: Seconds | None = Field(description="Nearest-rank percentile, order to drop.")
    p90_s: Seconds | None
    p95_s: Seconds | None
    p99_s: Seconds | None
    max_s: Seconds | None
    mean_s: Seconds | None


class StationTimes(TimesView):
    station: str


class TimesAnswer(Answer):
    """Order-to-delivery time of the window's orders that were delivered."""

    overall: TimesView
    stations: list[StationTimes]


class ReasonView(BaseModel):
    outcome: str = Field(description="`failed` or `cancelled`.")
    reason: str = Field(description="The last note, drone ids and figures taken out.")
    deliveries: int = Field(ge=1)


class OutcomesAnswer(Answer):
    """The window's orders by their status now, and why those that ended badly did."""

    orders: int = Field(ge=0)
    by_status: dict[str, int]
    reasons: list[ReasonView] = Field(description="Most frequent first, per outcome.")


class Times(BaseModel):
    flight_s: Seconds = Field(ge=0, description="In flight, returning or in emergency.")
    idle_s: Seconds = Field(ge=0)
    charging_s: Seconds = Field(ge=0)
    other_s: Seconds = Field(ge=0, description="With no status reported.")
    observed_s: Seconds = Field(
        ge=0,
        description="Steps between readings that count (at most a minute apart in the air, a "
        "quarter of an hour on a pad): the sum of the above.",
    )
    flight_share: Share
    idle_share: Share
    charging_share: Share


class FleetDay(Times):
    day: date
    drones: int = Field(ge=0, description="Drones with readings that day.")


class DroneDay(Times):
    day: date
    drone_id: str
    model: str | None = Field(description="From the registry; null if not registered.")
    home_station: str | None


class UtilisationAnswer(Answer):
    """From the drone rollups: the whole minutes of the window (`covered`)."""

    covered: AnalyticsWindow | None = Field(description="Null: the window holds no whole minute.")
    fleet: list[FleetDay] = Field(description="Every UTC day of `covered`.")
    drones: list[DroneDay]


class ModelEnergy(BaseModel):
    model: str
    drones: int = Field(ge=1)
    km: Finite = Field(ge=0, description="Flown: not counted while idle or charging.")
    energy_wh: Finite = Field(
        ge=0, description="Battery drops in flight times the registry's capacity."
    )
    wh_per_km: Finite | None
    rated_wh_per_km: Finite = Field(description="The registry's consumption, averaged.")


class EnergyAnswer(Answer):
    """From the drone rollups of registered drones: the whole minutes of the window."""

    covered: AnalyticsWindow | None
    items: list[ModelEnergy]


class AlertCell(BaseModel):
    type: str
    station: str = Field(description="The drone's home station; `?` if not registered.")
    alerts: int = Field(ge=1)
    critical: int = Field(ge=0)


class AlertType(BaseModel):
    type: str
    alerts: int = Field(ge=1)
    critical: int = Field(ge=0)


class AlertsAnswer(Answer):
    """Alerts opened in the window."""

    total: int = Field(ge=0)
    by_type: list[AlertType] = Field(description="Most alerts first.")
    items: list[AlertCell] = Field(description="By type, then station.")


def _answer(
    query: AnalyticsQuery, figures: Callable[[Analytics, Span, str | None], Any]
) -> Response:
    from skyhive.adapters.archive_sql import QueryTimeout  # DuckDB: loaded on first use

    analytics = current_clients().analytics
    try:
        span = analytics.window(query.since, query.until, query.station)
        body = figures(analytics, span, query.station)
    except WindowError as exc:
        raise ApiError(400, str(exc), exc.field) from None
    except UnknownStation:
        raise ApiError(404, f"unknown station {query.station!r}", "station") from None
    except QueryTimeout as exc:
        raise ApiError(408, str(exc)) from None
    return json_response({"window": span.as_dict(), "station": query.station} | body)


@operation(bp.get, "/stations", access=VIEWER, ok=StationsAnswer, errors=(404, 408))
def analytics_stations(query: AnalyticsQuery) -> Response:
    """Deliveries per station and per station and hour: orders, pickups, pickups per pad,
    waiting before assignment (the bottlenecks)."""
    return _answer(query, Analytics.stations)


@operation(bp.get, "/on-time", access=VIEWER, ok=OnTimeAnswer, errors=(404, 408))
def analytics_on_time(query: AnalyticsQuery) -> Response:
    """On-time rate against the ETA given at assignment, overall and per station."""
    return _answer(query, Analytics.on_time)


@operation(bp.get, "/delivery-times", access=VIEWER, ok=TimesAnswer, errors=(404, 408))
def analytics_delivery_times(query: AnalyticsQuery) -> Response:
    """Order-to-delivery time percentiles (p50, p90, p95, p99), overall and per station."""
    return _answer(query, Analytics.delivery_times)


@operation(bp.get, "/outcomes", access=VIEWER, ok=OutcomesAnswer, errors=(404, 408))
def analytics_outcomes(query: AnalyticsQuery) -> Response:
    """Orders by status, and the failure and cancellation reasons."""
    return _answer(query, Analytics.outcomes)


@operation(bp.get, "/utilisation", access=VIEWER, ok=UtilisationAnswer, errors=(404,))
def analytics_utilisation(query: AnalyticsQuery) -> Response:
    """Drone utilisation per drone and day, and the fleet's per day: flight, idle and
    charging seconds and their shares."""
    return _answer(query, Analytics.utilisation)


@operation(bp.get, "/energy", access=VIEWER, ok=EnergyAnswer, errors=(404,))
def analytics_energy(query: AnalyticsQuery) -> Response:
    """Energy per km flown, by drone model, beside the model's rated consumption."""
    return _answer(query, Analytics.energy)


@operation(bp.get, "/alerts", access=VIEWER, ok=AlertsAnswer, errors=(404, 408))
def analytics_alerts(query: AnalyticsQuery) -> Response:
    """Alerts opened in the window, by type and the drone's home station."""
    return _answer(query, Analytics.alerts)
