"""Commands to a MAVLink vehicle: the mission a `deliver` becomes, and the protocol that
uploads and starts it, as a state machine without sockets.

A ``deliver`` is a mission (MISSION_ITEM_INT, frame GLOBAL_RELATIVE_ALT_INT): take off,
fly to the pickup, loiter there while loaded, fly to the destination, loiter for the drop,
land at the return station; uploaded with MISSION_COUNT → MISSION_REQUEST(_INT) →
MISSION_ITEM_INT … → MISSION_ACK, then started with MAV_CMD_MISSION_START (COMMAND_LONG →
COMMAND_ACK). A ``return_to_station`` is MAV_CMD_DO_REPOSITION to the station. Every step
waits ``timeout_s`` for its answer and is sent again up to ``retries`` times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from skyhive.domain.commands import DeliverCommand, ReturnCommand

FRAME_GLOBAL_RELATIVE_ALT_INT = 6
MAV_CMD_NAV_WAYPOINT = 16
MAV_CMD_NAV_LOITER_TIME = 19
MAV_CMD_NAV_LAND = 21
MAV_CMD_NAV_TAKEOFF = 22
MAV_CMD_DO_REPOSITION = 192
MAV_CMD_MISSION_START = 300
MAV_DO_REPOSITION_FLAGS_CHANGE_MODE = 1
MAV_RESULT_ACCEPTED, MAV_RESULT_IN_PROGRESS = 0, 5
MAV_MISSION_ACCEPTED = 0

# superseded: a newer command for the same vehicle replaced the exchange before it ended.
Outcome = Literal["accepted", "refused", "timed_out", "superseded"]


@dataclass(frozen=True, slots=True)
class MissionItem:
    seq: int
    command: int
    lat: float
    lon: float
    alt_m: float
    param1: float = 0.0

    @property
    def x(self) -> int:  # degE7, as MISSION_ITEM_INT carries it
        return round(self.lat * 1e7)

    @property
    def y(self) -> int:
        return round(self.lon * 1e7)


@dataclass(frozen=True, slots=True)
class SendCount:
    count: int


@dataclass(frozen=True, slots=True)
class SendItem:
    item: MissionItem


@dataclass(frozen=True, slots=True)
class SendCommand:
    command: int
    params: tuple[float, float, float, float, float, float, float]
    confirmation: int = 0  # 0 first, +1 on each resend (MAVLink's command protocol)


Send = SendCount | SendItem | SendCommand


def delivery_mission(cmd: DeliverCommand, alt_m: float, hold_s: float) -> list[MissionItem]:
    """The mission of a deliver command; take-off where the vehicle is (0, 0: here)."""
    p, d, r = cmd.pickup, cmd.destination, cmd.return_station
    plan = [
        (MAV_CMD_NAV_TAKEOFF, 0.0, 0.0, 0.0),
        (MAV_CMD_NAV_WAYPOINT, p.lat, p.lon, 0.0),
        (MAV_CMD_NAV_LOITER_TIME, p.lat, p.lon, hold_s),
        (MAV_CMD_NAV_WAYPOINT, d.lat, d.lon, 0.0),
        (MAV_CMD_NAV_LOITER_TIME, d.lat, d.lon, hold_s),
        (MAV_CMD_NAV_LAND, r.lat, r.lon, 0.0),
    ]
    return [MissionItem(i, c, lat, lon, alt_m, p1) for i, (c, lat, lon, p1) in enumerate(plan)]


# The delivery events a flight of :func:`delivery_mission` reports through its progress
# (MISSION_ITEM_REACHED): the hold at the pickup is the loading, the hold at the destination
# the drop. A later item reached implies the earlier events (the tracker fills a missing
# pickup in when a delivery comes).
PROGRESS_EVENTS = {2: "picked_up", 4: "delivered"}


def progress_event(seq: int, reported: int) -> tuple[str, int] | None:
    """The delivery event that reaching mission item ``seq`` reports, given the last item
    whose event was already reported (-1: none), with the new last; None: nothing new (a
    repeated or earlier item: MISSION_ITEM_REACHED is sent more than once over UDP)."""
    due = [i for i in PROGRESS_EVENTS if reported < i <= seq]
    return (PROGRESS_EVENTS[due[-1]], due[-1]) if due else None


def reposition(cmd: ReturnCommand, alt_m: float) -> SendCommand:
    """MAV_CMD_DO_REPOSITION to the return station (lat/lon in params 5/6, switching the
    vehicle to the mode that flies there)."""
    s = cmd.return_station
    flags = float(MAV_DO_REPOSITION_FLAGS_CHANGE_MODE)
    return SendCommand(MAV_CMD_DO_REPOSITION, (-1.0, flags, 0.0, float("nan"), s.lat, s.lon, alt_m))


@dataclass(slots=True)
class Exchange:
    """One command's conversation with a vehicle: an optional mission upload, then a
    COMMAND_LONG. Feed it the vehicle's answers and the clock; it says what to send and,
    at the end, the ``outcome`` with its ``detail`` (the MAV_RESULT or MAV_MISSION_RESULT
    name of a refusal)."""

    items: list[MissionItem]
    command: SendCommand
    timeout_s: float
    retries: int
    outcome: Outcome | None = None
    detail: str = ""
    _last: list[Send] = field(default_factory=list)
    _deadline: float = 0.0
    _tries: int = 0
    _uploading: bool = False

    def start(self, now: float) -> list[Send]:
        self._uploading = bool(self.items)
        return self._send([SendCount(len(self.items))] if self.items else [self.command], now)

    def _send(self, out: list[Send], now: float) -> list[Send]:
        self._last, self._deadline, self._tries = out, now + self.timeout_s, 0
        return out

    def _end(self, outcome: Outcome, detail: str) -> list[Send]:
        self.outcome, self.detail, self._last = outcome, detail, []
        return []

    def on_request(self, seq: int, now: float) -> list[Send]:
        """MISSION_REQUEST_INT (or MISSION_REQUEST) for item ``seq``."""
        if self.outcome is not None or not self._uploading or not 0 <= seq < len(self.items):
            return []
        return self._send([SendItem(self.items[seq])], now)

    def on_mission_ack(self, result: int, result_name: str, now: float) -> list[Send]:
        if self.outcome is not None or not self._uploading:
            return []
        if result != MAV_MISSION_ACCEPTED:
            return self._end("refused", f"mission refused: {result_name}")
        self._uploading = False
        return self._send([self.command], now)

    def on_command_ack(self, command: int, result: int, result_name: str) -> list[Send]:
        if self.outcome is not None or self._uploading or command != self.command.command:
            return []
        if result == MAV_RESULT_IN_PROGRESS:
            return []
        if result == MAV_RESULT_ACCEPTED:
            return self._end("accepted", "accepted")
        return self._end("refused", f"command refused: {result_name}")

    def tick(self, now: float) -> list[Send]:
        """Resend what went unanswered past its deadline, or give up after ``retries``."""
        if self.outcome is not None or now < self._deadline:
            return []
        if self._tries >= self.retries:
            step = "mission upload" if self._uploading else "command"
            return self._end("timed_out", f"{step}: no answer after {self._tries + 1} tries")
        self._tries += 1
        self._deadline = now + self.timeout_s
        self._last = [
            SendCommand(s.command, s.params, self._tries) if isinstance(s, SendCommand) else s
            for s in self._last
        ]
        return self._last


def delivery_exchange(
    cmd: DeliverCommand, alt_m: float, hold_s: float, timeout_s: float, retries: int
) -> Exchange:
    nan = float("nan")
    start = SendCommand(MAV_CMD_MISSION_START, (0.0, 0.0, nan, nan, nan, nan, nan))
    return Exchange(delivery_mission(cmd, alt_m, hold_s), start, timeout_s, retries)


def return_exchange(cmd: ReturnCommand, alt_m: float, timeout_s: float, retries: int) -> Exchange:
    return Exchange([], reposition(cmd, alt_m), timeout_s, retries)
