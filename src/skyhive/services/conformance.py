"""Conformance watch: each reading checked against its drone's declared flight
(``domain/conformance.py``), on the processor's batch path, and silence checked on a timer.

Per batch: one read of the batch's drones' declarations and conformance memory
(:meth:`ConformanceWatch.judge`); the readings newer than the last judged go through the
check, in event-time order, so a duplicate or a late, out-of-order reading never flaps a
delivery. Findings go to the alert engine with the batch's other findings (a ``conformance``
alert; critical with the nearest station once the breach lasts, which makes the engine send
the drone there). After the batch's writes, :meth:`settle` moves the deliveries
(``non_conforming``, ``contingent``, back to the status they left) through the record's
guarded transitions and remembers where each drone stands. A declaration whose delivery is
no longer active is dropped instead of judged (the dispatch queue's status, read only when
there is something to say).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from skyhive.domain.alert_rules import AIRBORNE, Finding
from skyhive.domain.conformance import (
    ALERT_TYPE,
    Breach,
    ConformanceConfig,
    Declaration,
    Move,
    Watch,
    check,
    stale_breach,
    step,
)
from skyhive.domain.deliveries import ACTIVE, FLYING, TransitionRefused, resumed_status
from skyhive.domain.geo import nearest
from skyhive.domain.telemetry import Telemetry
from skyhive.ports.clock import Clock
from skyhive.ports.conformance import Declarations
from skyhive.ports.delivery_records import DeliveryRecords
from skyhive.ports.stations import StationLookup
from skyhive.services.alerting import AlertEngine

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Judged:
    """A batch's conformance: findings per drone, and what :meth:`settle` writes."""

    findings: dict[str, list[Finding]] = field(default_factory=dict)
    moves: list[tuple[str, str, Move, datetime, str]] = field(default_factory=list)
    watches: dict[str, Watch] = field(default_factory=dict)


class ConformanceWatch:
    def __init__(
        self,
        cfg: ConformanceConfig,
        *,
        declarations: Declarations,
        records: DeliveryRecords,
        engine: AlertEngine,
        stations: StationLookup,
        clock: Clock,
    ) -> None:
        self._cfg = cfg
        self._declarations = declarations
        self._records = records
        self._engine = engine
        self._stations = stations
        self._clock = clock

    def judge(self, fresh: list[Telemetry], near: Mapping[str, str]) -> Judged:
        """Check the batch's new readings (``near``: drone → its nearest station, where
        known) against their drones' declarations."""
        out = Judged()
        if not fresh:
            return out
        declared = self._declarations.read(sorted({t.drone_id for t in fresh}))
        if not declared:
            return out
        mine: dict[str, list[Telemetry]] = {}
        for t in fresh:
            if t.drone_id in declared:
                mine.setdefault(t.drone_id, []).append(t)
        for drone_id, readings in mine.items():
            decl, watch = declared[drone_id]
            watch = _current(watch, decl)
            for t in sorted(readings, key=lambda t: (t.ts_ms, t.seq)):
                if not watch.is_newer(t.ts_ms, t.seq):
                    continue  # late or replayed: must not move the delivery back in time
                watch.ts_ms, watch.seq = t.ts_ms, t.seq
                if t.lat is not None and t.lon is not None:
                    watch.position = (t.lat, t.lon)
                if t.status is not None:
                    watch.airborne = t.status in AIRBORNE
                breach = check(decl, t.lat, t.lon, t.alt_m, t.ts)
                self._step(out, drone_id, watch, breach, t.ts, near.get(drone_id))
            out.watches[drone_id] = watch
        return self._active_only(out, declared)

    def _step(
        self,
        out: Judged,
        drone_id: str,
        watch: Watch,
        breach: Breach | None,
        at: datetime,
        station: str | None,
    ) -> None:
        if breach is not None and station is None:
            station = self._nearest_station(watch)
        s = step(watch, breach, at, self._cfg, station)
        if s.finding is not None:
            out.findings.setdefault(drone_id, []).append(s.finding)
        if s.move is not None:
            why = f"conformance: {breach.kind}" if breach else "conforms again"
            out.moves.append((drone_id, watch.delivery_id, s.move, at, why))

    def _nearest_station(self, watch: Watch) -> str | None:
        if watch.position is None:
            return None
        lat, lon = watch.position
        found = nearest(lat, lon, list(self._stations.all().values()), lambda s: (s.lat, s.lon), 1)
        return found[0].code if found else None

    def _active_only(
        self, out: Judged, declared: Mapping[str, tuple[Declaration, Watch | None]]
    ) -> Judged:
        """Keep what concerns active deliveries; drop the declarations of the others (their
        flight ended: delivered, failed, cancelled, re-dispatched). A delivery in breach
        that a drone event moved on meanwhile (a pickup reported while off the corridor) is
        flagged again."""
        speaking = {d for d in out.findings} | {m[0] for m in out.moves}
        if not speaking:
            return out
        ids = {d: declared[d][0].delivery_id for d in speaking}
        statuses = self._declarations.statuses(list(set(ids.values())))
        moving = {m[0] for m in out.moves}
        for drone_id, delivery_id in ids.items():
            status = statuses.get(delivery_id)
            watch = out.watches.get(drone_id)
            if status in FLYING and watch and watch.breach and drone_id not in moving:
                at = out.findings[drone_id][-1].ts
                why = f"conformance: {watch.breach}"
                out.moves.append((drone_id, delivery_id, "non_conforming", at, why))
            if status in ACTIVE:
                continue
            self._declarations.drop(drone_id, delivery_id)
            said = out.findings.pop(drone_id, None)
            out.watches.pop(drone_id, None)
            out.moves = [m for m in out.moves if m[0] != drone_id]
            before = declared[drone_id][1]
            if before is not None and before.breach is not None:  # its alert is open: end it
                at = said[-1].ts if said else self._clock.now()
                ended = {"delivery_id": delivery_id, "delivery_status": status}
                out.findings[drone_id] = [Finding(ALERT_TYPE, None, at, ended)]
        return out

    def settle(self, judged: Judged) -> None:
        """Move the deliveries the batch's judgements call for, then remember them."""
        for drone_id, delivery_id, move, at, why in judged.moves:
            self._move(drone_id, delivery_id, move, at, why)
        self._declarations.save(judged.watches)

    def _move(self, drone_id: str, delivery_id: str, move: Move, at: datetime, why: str) -> None:
        """One lifecycle step, through the record's guarded transition: a replay, or a race
        with the tracker, is refused and changes nothing."""
        target: str = move
        if move == "resume":
            delivery = self._records.get(delivery_id)
            if delivery is None or delivery.status != "non_conforming":
                return
            target = resumed_status([e.status for e in delivery.timeline])
        note = f"{drone_id} {why}"
        if move == "contingent":
            note += "; sent to the nearest station"
        try:
            self._records.transition(delivery_id, target, at, note)
        except TransitionRefused as exc:
            log.info("conformance step of %s not taken: %s", delivery_id, exc)
        except KeyError:
            self._declarations.drop(drone_id, delivery_id)

    def sweep(self, hold_s: float) -> int:
        """Stale telemetry: a drone with an active declaration not heard from for longer
        than ``stale_s`` (the server's clock, as for ``offline``) is in breach. One processor
        at a time; returns how many alerts changed."""
        if not self._declarations.take_sweep(max(100, int(hold_s * 900))):
            return 0
        now = self._clock.now()
        silent = self._declarations.silent(now.timestamp() - self._cfg.stale_s)
        declared = self._declarations.read(sorted(silent))
        out = Judged()
        for drone_id, (decl, watch) in declared.items():
            watch = _current(watch, decl)
            if not watch.airborne:
                continue  # on a pad, waiting to take off: silence there is not a breach
            heard = silent[drone_id] or decl.declared_at.timestamp()
            breach = stale_breach(now.timestamp() - heard, self._cfg)
            if breach is None or (watch.breach is not None and watch.breach != "stale"):
                continue  # a breach the readings found stands until a reading ends it
            began = watch.breach is None
            self._step(out, drone_id, watch, breach, now, None)
            if not began and not any(m[0] == drone_id for m in out.moves):
                out.findings.pop(drone_id, None)  # said when it began and when it lasted
            out.watches[drone_id] = watch
        out = self._active_only(out, declared)
        changed = self._engine.apply([(d, f) for d, fs in out.findings.items() for f in fs])
        self.settle(out)
        return len(changed)


def _current(watch: Watch | None, decl: Declaration) -> Watch:
    """The drone's memory, unless it is of an earlier delivery."""
    if watch is None or watch.delivery_id != decl.delivery_id:
        return Watch(decl.delivery_id)
    return watch
