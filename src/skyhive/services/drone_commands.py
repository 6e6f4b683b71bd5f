"""Commands an operator gives one drone through the API (the dashboard's "return to station").

They go on the commands stream that the dispatchers relay to MQTT, the way the alerting engine
and delivery cancellation command drones, so an API process never holds an MQTT connection.
Sending the same command twice is harmless: the drone is already on its way.
"""

from __future__ import annotations

from skyhive.domain.commands import ReturnCommand, return_command
from skyhive.domain.geo import nearest
from skyhive.domain.stations import Station
from skyhive.ports.bus import Bus
from skyhive.ports.clock import Clock
from skyhive.ports.live_fleet import LiveFleet
from skyhive.ports.stations import StationLookup


class DroneNotFound(KeyError):
    pass


class StationNotFound(KeyError):
    pass


class DroneCommands:
    def __init__(
        self,
        live: LiveFleet,
        stations: StationLookup,
        bus: Bus,
        clock: Clock,
        commands_stream: str,
    ) -> None:
        self._live = live
        self._stations = stations
        self._bus = bus
        self._clock = clock
        self._stream = commands_stream

    def return_to_station(
        self, drone_id: str, reason: str, station_code: str | None = None
    ) -> ReturnCommand:
        """Order ``drone_id`` to land at ``station_code``, or at the station nearest to its
        last known position; returns the command queued."""
        state = self._live.get(drone_id)
        if state is None:
            raise DroneNotFound(drone_id)
        station: Station | None
        if station_code is not None:
            station = self._stations.get(station_code)
            if station is None:
                raise StationNotFound(f"no station {station_code[:40]!r}")
        else:
            if state.get("lat") is None or state.get("lon") is None:
                raise StationNotFound("no station given and the drone has reported no position")
            stations = list(self._stations.all().values())
            found = nearest(state["lat"], state["lon"], stations, lambda s: (s.lat, s.lon), 1)
            if not found:
                raise StationNotFound("no station is known")
            station = found[0]
        cmd = return_command(station, self._clock.now(), reason)
        self._bus.publish(self._stream, [(drone_id, cmd.to_json())])
        return cmd
