"""Network Remote ID's read side: the flights in a view and one flight's details, as an ASTM
F3411-22a display provider asks for them (``domain/remote_id.py`` maps; this reads)."""

from __future__ import annotations

from typing import Any

from uas_standards.astm.f3411.v22a import api as f3411

from skyhive.domain.remote_id import (
    RemoteIdConfig,
    View,
    drone_of,
    flight_details,
    flight_id,
    flights_response,
    is_current,
    is_flying,
    rid_flight,
)
from skyhive.ports.clock import Clock
from skyhive.ports.drone_specs import DroneSpecs
from skyhive.ports.remote_id import LiveInView


class RemoteIdFeed:
    def __init__(
        self, live: LiveInView, fleet: DroneSpecs, clock: Clock, config: RemoteIdConfig
    ) -> None:
        self._live = live
        self._fleet = fleet
        self._clock = clock
        self._max_age_s = config.max_age_s
        self._simulated = config.simulated

    def _active(self, state: dict[str, Any] | None) -> bool:
        return (
            state is not None
            and is_flying(state)
            and is_current(state, self._clock.now(), self._max_age_s)
        )

    def flights(self, view: View) -> f3411.GetFlightsResponse:
        """The drones flying (or on a delivery) inside ``view`` whose latest reading is
        current, by flight id; two round trips to Redis whatever the fleet's size."""
        ids = self._live.in_view(view)
        flights = [
            rid_flight(s, self._simulated)
            for s in self._live.get_many(ids)
            if s is not None and self._active(s) and view.contains(s["lat"], s["lon"])
        ]
        flights.sort(key=lambda f: f.id)
        return flights_response(flights, self._clock.now())

    def details(self, flight: str) -> f3411.GetFlightDetailsResponse | None:
        """Who flies ``flight``, while it is active; None once it is over (or never was)."""
        drone = drone_of(flight)
        state = self._live.get(drone)
        if state is None or not self._active(state) or flight_id(state) != flight:
            return None
        spec = self._fleet.get(drone)
        if spec is None:
            return flight_details(flight, None, None)
        return flight_details(flight, spec.uas_id, spec.operator_id)
