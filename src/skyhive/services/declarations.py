"""Declaring flights: the tracker declares each assigned delivery's flight
(``domain/conformance.declare``) within a second of the assignment, off the dispatch path,
from the drone's live position, the pickup, the destination and the return station.

Written to Redis first (what the processor checks readings against), then with the delivery
in MongoDB (the truth, and what says it is done): a crash between the two leaves the record
undeclared, and the next look declares it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from skyhive.domain.conformance import ConformanceConfig, Declaration, LatLon, declare
from skyhive.domain.deliveries import FLYING, Flight
from skyhive.domain.dispatch import STOP_S, eta_seconds
from skyhive.domain.geo import haversine_m
from skyhive.ports.conformance import Declarations
from skyhive.ports.delivery_records import DeliveryRecords
from skyhive.ports.stations import StationLookup


class FlightDeclarer:
    def __init__(
        self,
        cfg: ConformanceConfig,
        *,
        records: DeliveryRecords,
        declarations: Declarations,
        stations: StationLookup,
    ) -> None:
        self._cfg = cfg
        self._records = records
        self._declarations = declarations
        self._stations = stations

    def declare(
        self,
        flights: list[tuple[Flight, Mapping[str, Any] | None]],
        cruise_mps: Callable[[str], float],
        now: datetime,
    ) -> int:
        """Declare the flights (with their drones' live states) not declared yet; returns
        how many were."""
        made: list[Declaration] = []
        for flight, state in flights:
            if flight.declared or flight.status not in FLYING or flight.drone_id is None:
                continue
            back = self._stations.get(flight.return_station or "")
            if back is None:
                continue
            here: LatLon | None = None
            if state and state.get("lat") is not None and state.get("lon") is not None:
                here = (float(state["lat"]), float(state["lon"]))
            dest = (flight.destination.lat, flight.destination.lon)
            return_s = eta_seconds(
                haversine_m(*dest, back.lat, back.lon) / 1000.0, cruise_mps(flight.drone_id)
            )
            back_by = (flight.eta or now) + timedelta(seconds=return_s + STOP_S)
            waypoints = [here, (flight.pickup.lat, flight.pickup.lon), dest, (back.lat, back.lon)]
            made.append(
                declare(
                    flight.id,
                    flight.drone_id,
                    waypoints,
                    flight.updated_at,
                    back_by,
                    now,
                    self._cfg,
                )
            )
        if made:
            self._declarations.declare(made)
            self._records.set_fields_many({d.delivery_id: {"declaration": d} for d in made})
        return len(made)
