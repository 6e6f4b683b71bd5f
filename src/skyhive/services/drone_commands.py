"""Commands an operator gives one drone through the API (the dashboard's "return to station").

They go on the commands stream that the dispatchers relay to MQTT, the way the alerting engine
and delivery cancellation command drones, so an API process never holds an MQTT connection.
Sending the same command twice is harmless: the drone is already on its way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from skyhive.domain.commands import return_command
from skyhive.domain.geo import nearest
from skyhive.domain.stations import Station
from skyhive.wiring import Clients


class DroneNotFound(KeyError):
    pass


class StationNotFound(KeyError):
    pass


def return_to_station(
    clients: Clients,
    drone_id: str,
    reason: str,
    station_code: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Order ``drone_id`` to land at ``station_code``, or at the station nearest to its last
    known position; returns the command queued."""
    state = clients.live.get(drone_id)
    if state is None:
        raise DroneNotFound(drone_id)
    station: Station | None
    if station_code is not None:
        station = clients.stations.get(station_code)
        if station is None:
            raise StationNotFound(f"no station {station_code[:40]!r}")
    else:
        if state.get("lat") is None or state.get("lon") is None:
            raise StationNotFound("no station given and the drone has reported no position")
        stations = list(clients.stations.all().values())
        found = nearest(state["lat"], state["lon"], stations, lambda s: (s.lat, s.lon), 1)
        if not found:
            raise StationNotFound("no station is known")
        station = found[0]
    cmd = return_command(station, now or datetime.now(UTC), reason)
    clients.bus.publish(clients.settings.commands_stream, [(drone_id, orjson.dumps(cmd))])
    return cmd
