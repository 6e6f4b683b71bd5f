"""Commands to the drones that fly on MAVLink: the gateway's own consumer group on the
commands stream, run as MAVLink exchanges (``domain/mavlink_mission.py``).

Why a consumer group and not the drones' MQTT command topics: the commands stream is where
every command is written first (the dispatcher, the alerting engine and the API all append
to it); reading it needs no broker credential or topic ACL for a service that is no drone,
and a command for a drone this gateway has not heard from yet waits on the stream, not in a
broker session. The dispatcher still relays every command to MQTT; a MAVLink drone just
never subscribes there.

A command is acknowledged on the stream once its exchange has started: an exchange under
way when the gateway dies is not resumed (the operator sees no outcome on the timeline and
may re-send). The outcome of a ``deliver`` (accepted, refused with the MAV_RESULT or
MAV_MISSION_RESULT name, timed out) is written to its delivery's timeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from skyhive.domain.commands import DeliverCommand, InvalidCommand, parse_command
from skyhive.domain.mavlink import MavlinkConfig
from skyhive.domain.mavlink_mission import (
    Exchange,
    Send,
    delivery_exchange,
    progress_event,
    return_exchange,
)
from skyhive.ports.bus import BusMessage
from skyhive.ports.clock import Clock
from skyhive.ports.delivery_records import DeliveryNotes
from skyhive.ports.mavlink import ResultNamer
from skyhive.services.group_consumer import GroupConsumer
from skyhive.services.mavlink_gateway import MavlinkGateway

log = logging.getLogger(__name__)

GROUP = "mavlink"


@dataclass(slots=True)
class Running:
    exchange: Exchange
    delivery_id: str | None
    what: str


class MavlinkCommands:
    def __init__(
        self,
        cfg: MavlinkConfig,
        gateway: MavlinkGateway,
        consumer: GroupConsumer,
        notes: DeliveryNotes,
        names: ResultNamer,
        clock: Clock,
    ) -> None:
        self._cfg = cfg
        self._gw = gateway
        self._consumer = consumer
        self._notes = notes
        self._names = names
        self._clock = clock
        self.running: dict[str, Running] = {}  # drone id → its exchange (one at a time)
        # drone id → (delivery, the last mission item whose event was reported): the
        # mission it flies, started by this gateway.
        self.flying: dict[str, tuple[str, int]] = {}
        self.outcomes: list[tuple[str, str, str]] = []  # (drone, outcome, detail), for tests

    def setup(self) -> None:
        self._consumer.setup()

    def _start(self, msgs: list[BusMessage]) -> None:
        for m in msgs:
            if m.key not in self._gw.drone_ids:
                continue  # not a MAVLink drone: the MQTT relay serves it
            try:
                cmd = parse_command(m.value)
            except InvalidCommand as exc:
                log.warning("command for %s not understood: %s", m.key, exc)
                continue
            age_s = (self._clock.now() - cmd.issued_at).total_seconds()
            if age_s > self._cfg.command_max_age_s:
                log.info("command for %s issued %.0fs ago: not flown", m.key, age_s)
                continue
            cfg = self._cfg
            if isinstance(cmd, DeliverCommand):
                ex = delivery_exchange(
                    cmd, cfg.mission_alt_m, cfg.mission_hold_s, cfg.mission_timeout_s,
                    cfg.mission_retries,
                )  # fmt: skip
                running = Running(ex, cmd.delivery_id, f"mission for {cmd.delivery_id}")
            else:
                ex = return_exchange(
                    cmd, cfg.mission_alt_m, cfg.mission_timeout_s, cfg.mission_retries
                )
                running = Running(ex, None, f"return to {cmd.return_station.station}")
            self.flying.pop(m.key, None)  # a new command ends the mission flown
            if (old := self.running.get(m.key)) is not None:
                old.exchange.outcome, old.exchange.detail = "superseded", "a newer command"
                self._finish(m.key, old)
            self.running[m.key] = running
            if m.key not in self._gw.heard:
                ex.outcome, ex.detail = "timed_out", "vehicle not heard from: address unknown"
                continue
            self._send(m.key, ex.start(self._clock.monotonic()))

    def _send(self, drone_id: str, out: list[Send]) -> None:
        heard = self._gw.heard[drone_id]
        v = self._gw.vehicle(heard.link, heard.sysid)
        if v is None:
            return
        codec = self._gw.codec(v)
        for s in out:
            frame = codec.encode(s, (heard.sysid, heard.compid))
            self._gw.links.send(heard.link, heard.addr, frame)

    def step(self) -> None:
        """Start new commands, feed the vehicles' answers to their exchanges, resend what
        went unanswered, and record outcomes."""
        self._consumer.poll(self._start)
        now = self._clock.monotonic()
        replies, self._gw.replies = self._gw.replies, []
        for drone_id, kind, f in replies:
            if kind == "MISSION_ITEM_REACHED":
                self._progress(drone_id, int(f["seq"]))
                continue
            run = self.running.get(drone_id)
            if run is None:
                continue
            ex = run.exchange
            if kind in ("MISSION_REQUEST", "MISSION_REQUEST_INT"):
                out = ex.on_request(int(f["seq"]), now)
            elif kind == "MISSION_ACK":
                r = int(f["type"])
                out = ex.on_mission_ack(r, self._names("MAV_MISSION_RESULT", r), now)
            else:
                cmd, r = int(f["command"]), int(f["result"])
                out = ex.on_command_ack(cmd, r, self._names("MAV_RESULT", r))
            self._send(drone_id, out)
        for drone_id, run in list(self.running.items()):
            self._send(drone_id, run.exchange.tick(now))
            if run.exchange.outcome is not None:
                self._finish(drone_id, run)

    def _progress(self, drone_id: str, seq: int) -> None:
        """Mission progress of a delivery flown: its pickup and drop as delivery events."""
        flown = self.flying.get(drone_id)
        if flown is None:
            return
        delivery_id, reported = flown
        found = progress_event(seq, reported)
        if found is not None:
            event, reported = found
            self.flying[drone_id] = (delivery_id, reported)
            self._gw.event(drone_id, delivery_id, event)
            if event == "delivered":
                del self.flying[drone_id]

    def _finish(self, drone_id: str, run: Running) -> None:
        del self.running[drone_id]
        ex = run.exchange
        assert ex.outcome is not None
        if ex.outcome == "accepted" and run.delivery_id is not None:
            self.flying[drone_id] = (run.delivery_id, -1)
        self.outcomes.append((drone_id, ex.outcome, ex.detail))
        note = f"MAVLink {run.what} to {drone_id}: {ex.outcome.replace('_', ' ')} ({ex.detail})"
        log.info(note)
        if run.delivery_id is not None:
            try:
                self._notes.add_note(run.delivery_id, self._clock.now(), note)
            except KeyError:
                log.warning("delivery %s not found for its MAVLink outcome", run.delivery_id)
