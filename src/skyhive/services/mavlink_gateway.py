"""The MAVLink gateway: UDP datagrams from autopilots → telemetry v1 readings on the bus.

Each frame is attributed to a registered drone by its link and system id (the registry's
``mavlink_link``/``mavlink_sysid``), decoded by that drone's codec (which checks its MAVLink 2
signature), and merged into the vehicle's state (``domain/mavlink.py``). A position makes a
reading (at most ``reading_hz`` per vehicle) that goes through the same :class:`Ingest` as
MQTT's: the same validation, batches, emergencies lane and dead letters. What cannot be
attributed, decoded or trusted is dead-lettered with the raw frame in hex, never turned into
telemetry. UDP has no acknowledgement: a batch the bus refuses is kept and written again.

A vehicle in the air that sends no HEARTBEAT for ``heartbeat_loss_s`` gets a reading flagged
``mavlink.heartbeat_lost_s``, which the processor's rules turn into ``offline``; the next
heartbeat's reading resolves it. Commands for these drones are run by
:class:`~skyhive.services.mavlink_commands.MavlinkCommands` over the same sockets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skyhive.domain import mavlink as mav
from skyhive.domain.mavlink import MavlinkConfig, VehicleState
from skyhive.ports.clock import Clock
from skyhive.ports.deadletters import DeadLetter, DeadLetterSink
from skyhive.ports.mavlink import (
    CodecFactory,
    Datagram,
    Frame,
    Framer,
    FrameRefused,
    Links,
    MavlinkRegistry,
    MavlinkVehicle,
    VehicleCodec,
)
from skyhive.services.ingest import Ingest, RawMessage

log = logging.getLogger(__name__)

ANY_LINK = "any"
AUTOPILOT_COMPID = 1
UNKNOWN_REFRESH_S = 1.0  # an unknown vehicle reloads the registry at most this often
# Answers to commands and mission progress: the commands' business (mavlink_commands.py).
REPLIES = frozenset(
    {"MISSION_REQUEST", "MISSION_REQUEST_INT", "MISSION_ACK", "COMMAND_ACK", "MISSION_ITEM_REACHED"}
)


@dataclass(slots=True)
class Heard:
    """Where a vehicle was last heard from: where commands go."""

    link: str
    addr: tuple[str, int]
    sysid: int
    compid: int


class MavlinkGateway:
    def __init__(
        self,
        cfg: MavlinkConfig,
        ingest: Ingest,
        dead: DeadLetterSink,
        registry: MavlinkRegistry,
        links: Links,
        codecs: CodecFactory,
        framer: Framer,
        clock: Clock,
    ) -> None:
        self._cfg = cfg
        self._ingest = ingest
        self._dead_sink = dead
        self._registry = registry
        self.links = links
        self._new_codec = codecs
        self._framer = framer
        self._clock = clock
        self._vehicles: dict[tuple[str, int], MavlinkVehicle] = {}
        self._codecs: dict[str, tuple[bytes | None, VehicleCodec]] = {}
        self.states: dict[str, VehicleState] = {}
        self.heard: dict[str, Heard] = {}
        self.drone_ids: set[str] = set()
        self.replies: list[tuple[str, str, dict[str, Any]]] = []  # (drone, type, fields)
        self._queue: list[RawMessage] = []
        self._dead: list[DeadLetter] = []
        self._next_refresh = 0.0
        self._next_unknown_refresh = 0.0
        self.frames = 0
        self.readings = 0
        self.refused = 0

    # --- registry -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the registry's (link, sysid) → drone mapping."""
        self._vehicles = {(v.link, v.sysid): v for v in self._registry.mavlink_vehicles()}
        self.drone_ids = {v.drone_id for v in self._vehicles.values()}
        self._next_refresh = self._clock.monotonic() + self._cfg.registry_refresh_s

    def vehicle(self, link: str, sysid: int) -> MavlinkVehicle | None:
        return self._vehicles.get((link, sysid)) or self._vehicles.get((ANY_LINK, sysid))

    def codec(self, v: MavlinkVehicle) -> VehicleCodec:
        """The drone's codec; a new one when its key changed (its replay memory starts over)."""
        held = self._codecs.get(v.drone_id)
        if held is None or held[0] != v.key:
            now_s = self._clock.now().timestamp()
            held = (v.key, self._new_codec(v.key, self._cfg.allow_unsigned, now_s))
            self._codecs[v.drone_id] = held
        return held[1]

    # --- input ----------------------------------------------------------------------------

    def handle(self, d: Datagram) -> None:
        """Take one datagram: its frames into vehicles' states and readings, the rest into
        dead letters."""
        frames, rest = self._framer(d.data)
        source = f"mavlink:{d.link}"
        if rest:
            self._refuse("undecodable bytes: no MAVLink frame (raw in hex)", rest, source)
        now_ms = self._now_ms()
        for frame in frames:
            self.frames += 1
            self._frame(d, frame, source, now_ms)

    def _frame(self, d: Datagram, frame: Frame, source: str, now_ms: int) -> None:
        v = self.vehicle(d.link, frame.sysid)
        if v is None and self._clock.monotonic() >= self._next_unknown_refresh:
            # Registered a moment ago? Look again before refusing (once a second at most).
            self._next_unknown_refresh = self._clock.monotonic() + UNKNOWN_REFRESH_S
            self.refresh()
            v = self.vehicle(d.link, frame.sysid)
        if v is None:
            reason = f"unknown vehicle: system id {frame.sysid} on link {d.link} (raw in hex)"
            self._refuse(reason, frame.raw, source)
            return
        try:
            kind, fields = self.codec(v).decode(frame)
        except FrameRefused as exc:
            self._refuse(f"{v.drone_id}: {exc.reason} (raw in hex)", frame.raw, source)
            return
        # Commands go to the flight controller: its component id is the one whose heartbeat
        # says it is an autopilot (MAV_COMP_ID_AUTOPILOT1 until one is heard).
        prev = self.heard.get(v.drone_id)
        autopilot = mav.is_autopilot_heartbeat(kind, fields)
        compid = frame.compid if autopilot else prev.compid if prev else AUTOPILOT_COMPID
        self.heard[v.drone_id] = Heard(d.link, d.addr, frame.sysid, compid)
        if kind in REPLIES:
            self.replies.append((v.drone_id, kind, fields))
            return
        state = self.states.setdefault(v.drone_id, VehicleState())
        position = mav.merge(state, kind, fields, now_ms)
        back = autopilot and mav.heartbeat_back(state)
        due = mav.reading_due(state, now_ms, self._cfg.reading_hz)
        if (position and due) or (back and state.battery_pct is not None):
            self._emit(v, state, now_ms)

    def check_heartbeats(self) -> None:
        """Flag the vehicles in the air whose HEARTBEAT stopped."""
        now_ms = self._now_ms()
        for drone_id, state in self.states.items():
            if state.battery_pct is None:
                continue
            if mav.heartbeat_lost(state, now_ms, self._cfg.heartbeat_loss_s):
                heard = self.heard[drone_id]
                v = self.vehicle(heard.link, heard.sysid)
                if v is not None:
                    log.warning("%s: no HEARTBEAT for %.0fs", drone_id, self._cfg.heartbeat_loss_s)
                    self._emit(v, state, now_ms)

    def _emit(self, v: MavlinkVehicle, state: VehicleState, now_ms: int) -> None:
        heard = self.heard[v.drone_id]
        body = mav.reading(state, v.drone_id, now_ms, heard.link, heard.sysid)
        self._queue.append(RawMessage(body, f"mavlink:{heard.link}", v.drone_id))

    def event(self, drone_id: str, delivery_id: str, event: str) -> None:
        """A delivery event the vehicle's mission progress reports, written with the
        readings (timed by the vehicle's clock)."""
        heard = self.heard[drone_id]
        state = self.states.setdefault(drone_id, VehicleState())
        body = {
            "drone_id": drone_id,
            "delivery_id": delivery_id,
            "event": event,
            "ts": mav.event_time(state, self._now_ms()),
        }
        self._queue.append(RawMessage(body, f"mavlink:{heard.link}", drone_id, kind="event"))

    def _refuse(self, reason: str, raw: bytes, source: str) -> None:
        self.refused += 1
        self._dead.append(DeadLetter(reason, raw.hex().encode(), source))

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)

    # --- output ---------------------------------------------------------------------------

    def flush(self) -> bool:
        """Write the readings (in batches of ``batch_size``) and dead letters held; False
        when the bus refused (what is not written is kept)."""
        try:
            while self._queue:
                batch = self._queue[: self._cfg.batch_size]
                res = self._ingest.submit(batch, hold_back=False)
                del self._queue[: len(batch)]
                self.readings += res.accepted
            self._dead_sink.add(self._dead)
        except Exception:
            log.exception("could not write %d MAVLink readings; retrying", len(self._queue))
            return False
        self._dead = []
        return True

    def take_readings(self) -> list[RawMessage]:
        """The readings built and not yet written, taken (the benchmark times them alone)."""
        out, self._queue = self._queue, []
        return out

    def pending(self) -> int:
        return len(self._queue) + len(self._dead)

    def step(self, timeout_s: float) -> None:
        """One pass: read what arrives within ``timeout_s``, check heartbeats, write."""
        if self._clock.monotonic() >= self._next_refresh:
            self.refresh()
        for d in self.links.recv(timeout_s):
            self.handle(d)
        self.check_heartbeats()
        if self.pending():
            self.flush()

    def run(self, stop: threading.Event, also: Callable[[], object] | None = None) -> None:
        """Step until ``stop``; ``also`` runs after every step on the same thread (the
        commands, which share the sockets and the vehicles' addresses)."""
        log.info("mavlink gateway listening on %s", self._cfg.listen)
        while not stop.is_set():
            self.step(self._cfg.linger_ms / 1000.0)
            if also is not None:
                try:
                    also()
                except Exception:  # the commands stream unreachable: telemetry goes on
                    log.exception("mavlink commands failed; retrying")
                    stop.wait(0.5)
            if self.pending() >= self._cfg.batch_size:
                stop.wait(0.5)  # the bus refused: back off before the next try
        self.flush()
