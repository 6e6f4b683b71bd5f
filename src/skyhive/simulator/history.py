"""Simulated history: weeks of fleet activity generated at once, for a fresh machine's
forecasts, analytics and dashboard (``skyhive simulate --history``).

Pure and deterministic: the same plan (window, drones, customers, seed, settings) gives the
same readings, deliveries and alerts, with the same ids. Orders arrive as in
``history_demand``; each is dispatched as the dispatcher would (``domain/dispatch.judge`` and
``rank`` over the drones on a pad within range, charging counted), or waits for the first drone
that will be fit, and is cancelled by its customer when that is too long. Drones fly each
delivery with the live simulator's flight and battery models (``history_fleet``), and the
delivery's record follows what the tracker does with the drone's events (picked up, en route,
delivered; failed with the drone's reason, or back to pending before a pickup).

History covers ``[since, until)`` and holds finished deliveries only: an order that would
still be waiting or flying at ``until`` is left out (a quiet last half hour or so), and every
drone ends on a pad. The output comes in chunks, as simulated time goes on, so a month is
written while it is generated.
"""

from __future__ import annotations

import heapq
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from skyhive.domain.alert_config import AlertConfig
from skyhive.domain.alert_lifecycle import ActiveAlert
from skyhive.domain.alerts import Alert
from skyhive.domain.commands import deliver_command
from skyhive.domain.deliveries import (
    Delivery,
    DeliveryStatus,
    Point,
    TimelineEntry,
    delivered_fields,
)
from skyhive.domain.dispatch import (
    Candidate,
    DispatchPolicy,
    Trip,
    Verdict,
    energy_needed_pct,
    judge,
    promised_eta_seconds,
    rank,
)
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import haversine_m, nearest
from skyhive.domain.pricing import PricingConfig
from skyhive.domain.stations import Station
from skyhive.domain.telemetry import Telemetry
from skyhive.simulator.drone import Event
from skyhive.simulator.history_alerts import DroneAlerts, NearestStations
from skyhive.simulator.history_demand import HistoryOrder, hour_orders, hours, station_weights
from skyhive.simulator.history_fleet import HistoryDrone, flight_fault, seconds_to_charge

DISPATCHER = "history-simulator"  # the dispatch record's ``dispatcher``
ASSIGN_LATENCY_S = (0.05, 0.8)  # order (or a drone fit) to assignment, as a dispatcher tick
TRACKER_LATENCY_S = (0.05, 1.0)  # a drone event to its record
RETRY_S = 30.0  # a waiting order is looked at again at least this often
PADS_NEAR = 5  # return stations considered: the destination's nearest (as the dispatcher)
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dh])\s*$")


def parse_duration(text: str) -> timedelta:
    """``30d``, ``7d``, ``12h``: whole hours, at least one."""
    m = DURATION.fullmatch(text.lower())
    if m is None:
        raise ValueError(f"a duration is a number of days or hours (30d, 12h), got {text!r}")
    hours_ = float(m.group(1)) * (24 if m.group(2) == "d" else 1)
    if hours_ < 1 or hours_ != int(hours_):
        raise ValueError(f"a duration is whole hours, at least one, got {text!r}")
    return timedelta(hours=int(hours_))


def window_ending(now: datetime, length: timedelta) -> tuple[datetime, datetime]:
    """``[until - length, until)`` with ``until`` the start of ``now``'s hour, so that runs
    within the same hour cover the same window (and write the same documents)."""
    until = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return until - length, until


@dataclass(frozen=True, slots=True)
class HistoryPlan:
    since: datetime
    until: datetime
    drones: tuple[tuple[DroneSpec, Station], ...]  # each with the station it starts at
    stations: tuple[Station, ...]
    customers: tuple[str, ...]
    seed: int
    orders_per_day: float
    alerts: AlertConfig
    pricing: PricingConfig
    policy: DispatchPolicy
    radius_km: float
    reading_interval_s: float = 15.0
    docked_interval_s: float = 600.0
    chunk_readings: int = 20_000  # a chunk is handed on once it holds this many readings


@dataclass(slots=True)
class HistoryChunk:
    """What simulated time up to ``reached`` produced and was not handed on before."""

    reached: datetime
    readings: list[Telemetry] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    # In the last chunk: the alerts still active at the end, as (drone, type, active).
    active_alerts: list[tuple[str, str, ActiveAlert]] = field(default_factory=list)
    left_out: int = 0  # orders still unfinished at the end, not written


@dataclass(slots=True)
class _Order:
    """An order's life so far, as its record would hold it."""

    order: HistoryOrder
    give_up_ms: int  # the customer cancels if no drone has it by then
    timeline: list[TimelineEntry]
    fields: dict[str, Any] = field(default_factory=dict)  # set after creation

    @classmethod
    def placed(cls, order: HistoryOrder) -> _Order:
        created = order.created_at
        patience = timedelta(seconds=order.patience_s)
        accepted = TimelineEntry(status="pending", at=created, note="order accepted")
        return cls(order, _epoch_ms(created + patience), [accepted])

    def step(self, status: DeliveryStatus, at: datetime, note: str) -> None:
        at = max(_ms(at), self.timeline[-1].at)  # never before the step it follows
        self.timeline.append(TimelineEntry(status=status, at=at, note=note))

    @property
    def status(self) -> DeliveryStatus:
        return self.timeline[-1].status


def generate(plan: HistoryPlan) -> Iterator[HistoryChunk]:
    """The plan's history, in chunks, oldest first."""
    yield from _History(plan).run()


class _History:
    def __init__(self, plan: HistoryPlan) -> None:
        self.p = plan
        self.since_ms = _epoch_ms(plan.since)
        self.until_ms = _epoch_ms(plan.until)
        self.rng = random.Random(f"history-dispatch:{plan.seed}:{self.since_ms}")
        nearest_station = NearestStations(plan.stations)
        self.drones = [
            HistoryDrone(
                spec,
                station,
                self.since_ms,
                plan.reading_interval_s,
                plan.docked_interval_s,
                DroneAlerts(spec, plan.alerts, nearest_station, rng),
                nearest_station,
                rng,
            )
            for spec, station in plan.drones
            for rng in [random.Random(f"history-drone:{plan.seed}:{spec.drone_id}")]
        ]
        self.weights = station_weights(plan.stations)
        self.queue: list[tuple[int, int, _Order]] = []  # (due ms, tie-break, order)
        self.n = 0
        self.chunk = HistoryChunk(plan.since)

    def run(self) -> Iterator[HistoryChunk]:
        p = self.p
        for hour in hours(p.since, p.until):
            for order in hour_orders(
                hour, p.stations, self.weights, p.orders_per_day, p.customers, p.seed
            ):
                placed = _Order.placed(order)
                self._push(_epoch_ms(order.created_at), placed)
            end_ms = _epoch_ms(hour) + 3_600_000
            while self.queue and self.queue[0][0] < end_ms:
                due, _, o = heapq.heappop(self.queue)
                self._dispatch(o, due)
            if sum(len(d.readings) for d in self.drones) >= p.chunk_readings:
                yield self._take(end_ms)
        left = len(self.queue)  # waiting at the end: left out
        last = self._take(self.until_ms)
        for d in self.drones:
            alerts, active = d.alerts.close(p.until)
            last.alerts += alerts
            last.active_alerts += active
        last.left_out += left
        yield last

    def _push(self, due_ms: int, o: _Order) -> None:
        self.n += 1
        heapq.heappush(self.queue, (due_ms, self.n, o))

    def _take(self, reached_ms: int) -> HistoryChunk:
        """Everything made so far, the drones on a pad stepped to ``reached_ms``."""
        for d in self.drones:
            if d.busy_until_ms < reached_ms:
                d.advance(reached_ms - 1)
        chunk, self.chunk = self.chunk, HistoryChunk(_at(reached_ms))
        chunk.reached = _at(reached_ms)
        for d in self.drones:
            chunk.readings += d.readings
            d.readings = []
            chunk.alerts += d.alerts.take()
        return chunk

    # --- dispatching ----------------------------------------------------------------------

    def _dispatch(self, o: _Order, t_ms: int) -> None:
        """Assign ``o`` at ``t_ms`` to the best drone fit for it now, as the dispatcher does;
        else look again when the first drone will be fit, or let the customer cancel."""
        if t_ms >= o.give_up_ms:
            o.step("cancelled", _at(o.give_up_ms), "cancelled by request")
            self._finish(o)
            return
        station, dest = o.order.station, o.order.request.destination
        leg_km = haversine_m(station.lat, station.lon, dest.lat, dest.lon) / 1000.0
        back = self._return_station(dest.lat, dest.lon)
        back_km = haversine_m(dest.lat, dest.lon, back.lat, back.lon) / 1000.0
        weight = o.order.request.package.weight_kg
        verdicts, waits, busy = [], [], 0
        for d in self.drones:
            m = d.sim.motion
            to_pickup_km = haversine_m(m.lat, m.lon, station.lat, station.lon) / 1000.0
            if to_pickup_km > self.p.radius_km:
                continue
            trip = Trip(to_pickup_km, leg_km, back_km)
            if d.busy_until_ms > t_ms:
                busy += 1
                needed = energy_needed_pct(d.spec, trip, self.p.policy)
                waits.append(d.busy_until_ms + 1000 * seconds_to_charge(d.sim.battery, needed))
                continue
            d.advance(t_ms)
            cand = Candidate(d.spec, d.sim.battery.pct, d.sim.status, to_pickup_km)
            v = judge(cand, trip, weight, self.p.policy)
            verdicts.append((v, d, trip))
            if not v.eligible and v.needed_pct:  # short of battery: fit once charged
                waits.append(t_ms + 1000 * seconds_to_charge(d.sim.battery, v.needed_pct))
        ranked = rank([v for v, _, _ in verdicts])
        if not ranked:
            o.fields["waiting_reason"] = _why_waiting(len(verdicts) + busy)
            fit = min((w for w in waits if w < o.give_up_ms), default=t_ms + RETRY_S * 1000)
            self._push(min(round(max(fit, t_ms + 1000)), o.give_up_ms), o)
            return
        best = ranked[0]
        d, trip = next((d, trip) for v, d, trip in verdicts if v is best)
        self._assign(o, d, best, trip, back, len(verdicts), t_ms)

    def _assign(
        self,
        o: _Order,
        d: HistoryDrone,
        best: Verdict,
        trip: Trip,
        back: Station,
        considered: int,
        t_ms: int,
    ) -> None:
        at_ms = t_ms + round(self.rng.uniform(*ASSIGN_LATENCY_S) * 1000)
        at = _at(at_ms)
        req, station = o.order.request, o.order.station
        dest = (req.destination.lat, req.destination.lon)
        cmd = deliver_command(o.order.id, station, dest, back, at, req.package.weight_kg)
        flight = d.fly(cmd, at_ms, self.until_ms, flight_fault(self.rng))
        if flight is None:  # would still be flying at the end of history
            self.chunk.left_out += 1
            return
        eta_s = promised_eta_seconds(
            trip.to_pickup_km, trip.pickup_to_destination_km, d.spec.cruise_speed_mps
        )
        eta = _ms(at + timedelta(seconds=eta_s))
        created = o.order.created_at
        o.step("assigned", at, f"assigned to {d.drone_id}: {best.reason}")
        o.fields |= {
            "drone_id": d.drone_id,
            "return_station": back.code,
            "eta": eta,
            "waiting_reason": None,
            "dispatch": {
                "eta": eta,  # the ETA given at assignment, kept once ``eta`` moves on
                "drone_id": d.drone_id,
                "reason": best.reason,
                "score": round(best.score, 2),
                "needed_pct": round(best.needed_pct, 1),
                "candidates_considered": considered,
                "dispatcher": DISPATCHER,
                "accepted_at": created,
                "assigned_at": at,
                "latency_ms": round((at - created).total_seconds() * 1000, 1),
            },
        }
        self._follow(o, d, flight.events)

    def _follow(self, o: _Order, d: HistoryDrone, events: list[Event]) -> None:
        """The record's steps from the drone's events, as the tracker writes them."""
        for ev in events:
            if ev["delivery_id"] != o.order.id:
                continue
            at = datetime.fromisoformat(ev["ts"]) + self._tracker_latency()
            kind, drone = ev["event"], d.drone_id
            if kind == "picked_up":
                o.step("picked_up", at, f"picked up by {drone}")
                o.step("in_transit", at + self._tracker_latency(), f"{drone} en route")
            elif kind == "delivered":
                o.step("delivered", at, f"delivered by {drone}")
                o.fields |= delivered_fields(self._delivery(o), o.timeline[-1].at)
                self._finish(o)
                return
            elif o.status == "assigned":  # refused or gave up before the pickup: re-dispatch
                reason = ev.get("reason") or "no reason given"
                o.step("pending", at, f"{drone} could not take it ({reason}); re-dispatching")
                o.fields["drone_id"] = None
                at_ms = _epoch_ms(o.timeline[-1].at)
                o.give_up_ms = max(o.give_up_ms, at_ms + round(o.order.patience_s * 1000))
                self._push(at_ms + round(RETRY_S * 1000), o)  # not at once: it may refuse again
                return
            else:
                reason = ev.get("reason") or "no reason given"
                o.step("failed", at, f"{drone} reported failure: {reason}")
                self._finish(o)
                return

    def _tracker_latency(self) -> timedelta:
        return timedelta(seconds=self.rng.uniform(*TRACKER_LATENCY_S))

    def _return_station(self, lat: float, lon: float) -> Station:
        """The nearest station with a free pad among the five nearest, else the nearest (the
        dispatcher's rule; a pad is taken by a drone docked at or bound for the station)."""
        short = nearest(lat, lon, self.p.stations, _where, PADS_NEAR)
        docked: dict[str, int] = {}
        for d in self.drones:
            docked[d.sim.station.code] = docked.get(d.sim.station.code, 0) + 1
        return next((s for s in short if docked.get(s.code, 0) < s.pads), short[0])

    def _finish(self, o: _Order) -> None:
        self.chunk.deliveries.append(self._delivery(o))

    def _delivery(self, o: _Order) -> Delivery:
        """The record, with the fields a real one of that history has set."""
        order, req = o.order, o.order.request
        station = order.station
        fields = dict(o.fields)
        km = haversine_m(station.lat, station.lon, req.destination.lat, req.destination.lon) / 1000
        price: Decimal = self.p.pricing.delivery_price(km, req.package.weight_kg, req.package.size)
        return Delivery(
            id=order.id,
            order_id=None,
            customer_id=req.customer_id,
            pickup_station=station.code,
            pickup_location=Point(lat=station.lat, lon=station.lon),
            destination=req.destination,
            package=req.package,
            status=o.status,
            timeline=list(o.timeline),
            drone_id=fields.pop("drone_id", None),
            distance_km=round(km, 3),
            price_estimate=price,
            currency=self.p.pricing.currency,
            created_at=order.created_at,
            updated_at=o.timeline[-1].at,
            version=len(o.timeline) - 1,
            **fields,
        )


def _why_waiting(nearby: int) -> str:
    if not nearby:
        return "no drone within range of the pickup station"
    return f"no eligible drone among {nearby} nearby: busy or charging"


def _where(s: Station) -> tuple[float, float]:
    return s.lat, s.lon


def _epoch_ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _ms(at: datetime) -> datetime:
    """To the millisecond: what MongoDB keeps."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def fleet_for(
    count: int, registered: Sequence[DroneSpec], stations: Sequence[Station]
) -> list[DroneSpec]:
    """``count`` drones: the ``registered`` active ones first (by id), then new ones named
    and homed as the live simulator makes its fleet (``drone-0001`` at the first station, and
    so on), so that the demo's live drones are the ones with history."""
    active = [s for s in registered if s.status == "active"]
    out = sorted(active, key=lambda s: s.drone_id)[:count]
    taken = {s.drone_id for s in registered}
    width = max(4, len(str(count)))
    i = 0
    while len(out) < count:
        i += 1
        drone_id = f"drone-{i:0{width}d}"
        if drone_id not in taken:
            home = stations[(i - 1) % len(stations)].code
            out.append(DroneSpec(drone_id=drone_id, home_station=home))
    return out


def starting_stations(specs: Sequence[DroneSpec], stations: Sequence[Station]) -> list[Station]:
    """Where each drone starts: its home station (the first station when unknown)."""
    by_code = {s.code: s for s in stations}
    return [by_code.get(s.home_station, stations[0]) for s in specs]
