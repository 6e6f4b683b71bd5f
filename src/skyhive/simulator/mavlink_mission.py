"""What a simulated drone accepts over MAVLink: the mission protocol and a few commands.

Pure: :class:`MissionReceiver` takes decoded messages addressed to its vehicle and returns
the replies (MISSION_REQUEST_INT, MISSION_ACK, COMMAND_ACK) and, for a command the drone must
act on, an :class:`Order`; the runner applies the order to the :class:`SimDrone` through its
ordinary commands (:func:`delivery_command`, :func:`return_command`), so a MAVLink mission is
flown by the same state machine and flight model as a SkyHive ``deliver``.

A mission is read as a delivery: its positional items (NAV_WAYPOINT, NAV_LAND,
NAV_LOITER_TIME), neighbours within ``AT_STATION_M`` merged, must name three places: pickup,
destination, return station; a final NAV_RETURN_TO_LAUNCH stands for the drone's home.
NAV_TAKEOFF sets the cruise altitude. The drone flies straight between those places: points
in between are accepted but not flown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pymavlink.dialects.v20 import common as mav
from pymavlink.dialects.v20.common import MAVLink_mission_item_int_message as MissionItem

from skyhive.domain.commands import DEFAULT_PAYLOAD_KG, DeliverCommand, deliver_command
from skyhive.domain.geo import haversine_m
from skyhive.domain.stations import Station, bart_stations
from skyhive.simulator.flight import AT_STATION_M, MAX_ALT_M

_STOPS = frozenset({mav.MAV_CMD_NAV_WAYPOINT, mav.MAV_CMD_NAV_LAND, mav.MAV_CMD_NAV_LOITER_TIME})
_FRAMES = frozenset(
    {
        mav.MAV_FRAME_GLOBAL,
        mav.MAV_FRAME_GLOBAL_INT,
        mav.MAV_FRAME_GLOBAL_RELATIVE_ALT,
        mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
    }
)


class MissionRejected(ValueError):
    """A mission the drone cannot fly; ``code`` is the MAV_MISSION_RESULT to answer."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


@dataclass(frozen=True, slots=True)
class Stop:
    """A place the mission goes to, and the item whose reaching is reported."""

    seq: int
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class DeliveryRoute:
    pickup: Stop
    destination: Stop
    return_to: Stop | None  # None: back to launch (the drone's home station)
    cruise_alt_m: float | None


@dataclass(frozen=True, slots=True)
class Order:
    """A command to apply to the drone, acknowledged with COMMAND_ACK for ``command``."""

    command: int
    kind: Literal["mission", "rtl", "reposition"]
    route: DeliveryRoute | None = None
    point: tuple[float, float] | None = None  # (lat, lon) to reposition to


def delivery_route(items: list[MissionItem]) -> DeliveryRoute:
    """The delivery a mission describes, or :class:`MissionRejected` with the MAVLink code."""
    stops: list[Stop] = []
    cruise_alt: float | None = None
    rtl = False
    for item in items:
        if rtl:
            raise MissionRejected(mav.MAV_MISSION_INVALID_SEQUENCE, "items after RTL")
        if item.command == mav.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            rtl = True
            continue
        if item.command not in _STOPS and item.command != mav.MAV_CMD_NAV_TAKEOFF:
            raise MissionRejected(mav.MAV_MISSION_UNSUPPORTED, f"command {item.command}")
        if item.frame not in _FRAMES:
            raise MissionRejected(mav.MAV_MISSION_UNSUPPORTED_FRAME, f"frame {item.frame}")
        if not 0.0 <= item.z <= MAX_ALT_M:
            raise MissionRejected(mav.MAV_MISSION_INVALID_PARAM7, f"altitude {item.z}")
        if item.command == mav.MAV_CMD_NAV_TAKEOFF:
            cruise_alt = item.z
            continue
        stop = _stop(item)
        if stops and _same_place(stops[-1], stop):
            stops[-1] = stop  # a waypoint then a landing there: one place, reached at the last
        else:
            stops.append(stop)
    if len(stops) != (2 if rtl else 3):
        raise MissionRejected(
            mav.MAV_MISSION_INVALID, "a delivery goes to pickup, destination and a station"
        )
    return DeliveryRoute(stops[0], stops[1], None if rtl else stops[2], cruise_alt)


def _stop(item: MissionItem) -> Stop:
    lat, lon = item.x / 1e7, item.y / 1e7
    if not -90.0 <= lat <= 90.0:
        raise MissionRejected(mav.MAV_MISSION_INVALID_PARAM5_X, f"latitude {lat}")
    if not -180.0 <= lon <= 180.0:
        raise MissionRejected(mav.MAV_MISSION_INVALID_PARAM6_Y, f"longitude {lon}")
    return Stop(item.seq, lat, lon)


def _same_place(a: Stop, b: Stop) -> bool:
    return haversine_m(a.lat, a.lon, b.lat, b.lon) <= AT_STATION_M


def station_at(lat: float, lon: float, fallback_code: str) -> Station:
    """The BART station there (within ``AT_STATION_M``), else a pad named ``fallback_code``."""
    near = min(bart_stations(), key=lambda s: haversine_m(lat, lon, s.lat, s.lon))
    if haversine_m(lat, lon, near.lat, near.lon) <= AT_STATION_M:
        return Station(code=near.code, name=near.name, lat=lat, lon=lon)
    return Station(code=fallback_code, name=fallback_code, lat=lat, lon=lon)


def delivery_command(
    route: DeliveryRoute, home: Station, delivery_id: str, now_ms: int
) -> DeliverCommand:
    """The SkyHive ``deliver`` command the simulator flies for ``route``."""
    pickup = station_at(route.pickup.lat, route.pickup.lon, f"wp{route.pickup.seq}")
    back = route.return_to
    ret = home if back is None else station_at(back.lat, back.lon, f"wp{back.seq}")
    return deliver_command(
        delivery_id,
        pickup,
        (route.destination.lat, route.destination.lon),
        ret,
        datetime.fromtimestamp(now_ms / 1000.0, UTC),
        DEFAULT_PAYLOAD_KG,
    )


def command_ack(command: int, result: int) -> mav.MAVLink_command_ack_message:
    return mav.MAVLink_command_ack_message(command, result)


class MissionReceiver:
    """One vehicle's side of the mission upload and of COMMAND_LONG/COMMAND_INT."""

    def __init__(self, sysid: int) -> None:
        self.sysid = sysid
        self.route: DeliveryRoute | None = None  # the accepted mission, until replaced
        self._items: list[MissionItem] = []
        self._expected = 0  # items still to come: len(_items) < _expected
        self._peer = (0, 0)  # (system, component) uploading

    def handle(self, msg: mav.MAVLink_message) -> tuple[list[mav.MAVLink_message], Order | None]:
        """Replies to ``msg`` and what the drone must do (None: nothing). Messages addressed
        to another vehicle, and ones this vehicle does not take, get no reply."""
        target = getattr(msg, "target_system", None)
        if target not in (0, self.sysid) or getattr(msg, "target_component", 0) not in (0, 1):
            return [], None
        kind = msg.get_type()
        if kind == "MISSION_COUNT":
            return self._count(msg), None
        if kind == "MISSION_ITEM_INT":
            return self._item(msg), None
        if kind == "COMMAND_LONG":
            return self._command(msg.command, msg.param5, msg.param6)
        if kind == "COMMAND_INT":
            return self._command(msg.command, msg.x / 1e7, msg.y / 1e7)
        return [], None

    def _count(self, msg: mav.MAVLink_mission_count_message) -> list[mav.MAVLink_message]:
        self._peer = (msg.get_srcSystem(), msg.get_srcComponent())
        if msg.mission_type != mav.MAV_MISSION_TYPE_MISSION:
            return [self._ack(mav.MAV_MISSION_UNSUPPORTED, msg.mission_type)]
        self._items, self._expected = [], msg.count
        if msg.count == 0:
            self.route = None
            return [self._ack(mav.MAV_MISSION_ACCEPTED)]
        return [self._request(0)]

    def _item(self, msg: MissionItem) -> list[mav.MAVLink_message]:
        if len(self._items) >= self._expected:
            return []  # no upload under way: a late duplicate
        if msg.seq != len(self._items):
            return [self._request(len(self._items))]  # PX4 asks again for the one it wants
        self._items.append(msg)
        if len(self._items) < self._expected:
            return [self._request(len(self._items))]
        items, self._items, self._expected = self._items, [], 0
        try:
            self.route = delivery_route(items)
        except MissionRejected as exc:
            return [self._ack(exc.code)]
        return [self._ack(mav.MAV_MISSION_ACCEPTED)]

    def _command(
        self, command: int, lat: float, lon: float
    ) -> tuple[list[mav.MAVLink_message], Order | None]:
        if command == mav.MAV_CMD_MISSION_START:
            if self.route is None:
                return [command_ack(command, mav.MAV_RESULT_DENIED)], None
            return [], Order(command, "mission", route=self.route)
        if command == mav.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            return [], Order(command, "rtl")
        if command == mav.MAV_CMD_DO_REPOSITION:
            if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
                return [command_ack(command, mav.MAV_RESULT_DENIED)], None
            return [], Order(command, "reposition", point=(lat, lon))
        return [command_ack(command, mav.MAV_RESULT_UNSUPPORTED)], None

    def _request(self, seq: int) -> mav.MAVLink_mission_request_int_message:
        return mav.MAVLink_mission_request_int_message(*self._peer, seq)

    def _ack(
        self, code: int, mission_type: int = mav.MAV_MISSION_TYPE_MISSION
    ) -> mav.MAVLink_mission_ack_message:
        return mav.MAVLink_mission_ack_message(*self._peer, code, mission_type)
