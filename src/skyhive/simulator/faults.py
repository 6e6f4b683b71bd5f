"""Pure fault injection: which readings go out wrong, and how.

Drone faults (:class:`FaultKind`) change what a drone does or reports, so :class:`SimDrone`
applies them; each one trips one of SkyHive's alert rules:

- ``emergency``: the drone declares an emergency and hovers where it is for 15-60 s.
- ``battery_drain``: a fault drains the battery about ten times too fast for 1-3 minutes, so
  the drone gets low (``low_battery``) and diverts to the nearest station.
- ``gps_jump``: one reading's position is off by 2-5 km (a GPS glitch or spoofing); the drone
  itself does not move, so the next reading is back where it was (``gps_jump``).
- ``overspeed``: on its way (climbing or cruising), a gust or a runaway controller drives the
  drone at 31-40 m/s for 5-12 s (``overspeed``); it covers ground that much faster.
- ``altitude``: on its way, an updraft or an altitude-hold fault takes the drone up to
  125-150 m; it stays above the 120 m ceiling for 8-20 s, then comes back down to its cruise
  altitude (``altitude``).
- ``battery_drop``: a cell fails; the battery reads 20-30 points lower at once and stays there
  (``battery_drop``, and ``low_battery`` if that takes it low).
- ``offline``: the radio link drops for ``offline_s`` seconds: nothing the drone sends gets out
  (``offline``). It keeps flying; its readings meanwhile are lost and its delivery events are
  sent when the link is back.

Message faults (duplicate, out-of-order, malformed) only change which bytes are published, so
the pipeline's dedup, ordering and dead-letter paths can be exercised on demand; they are
applied here, by :class:`MessageFaults`.

Every fault has a per-message probability in :class:`FaultRates`; a drone fault can also be
forced once per drone (``SimDrone.fault_once``), for deterministic tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import orjson

Reading = dict[str, Any]


class FaultKind(StrEnum):
    """A drone fault; its value is also its field in :class:`FaultRates`."""

    EMERGENCY = "emergency"
    BATTERY_DRAIN = "battery_drain"
    GPS_JUMP = "gps_jump"
    OVERSPEED = "overspeed"
    ALTITUDE = "altitude"
    BATTERY_DROP = "battery_drop"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Per-message probability of each fault: 0 never happens, 1 happens on every message.

    A drone fault already under way is not started again; ``overspeed`` and ``altitude``
    only start while the drone is on its way (climbing or cruising).
    """

    emergency: float = 0.0
    battery_drain: float = 0.0
    gps_jump: float = 0.0
    overspeed: float = 0.0
    altitude: float = 0.0
    battery_drop: float = 0.0
    offline: float = 0.0
    duplicate: float = 0.0
    out_of_order: float = 0.0
    malformed: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate {f.name}={value!r} must be within [0, 1]")


class MalformedKind(StrEnum):
    """The ways a published message can be invalid, one per rejection path of the parser."""

    NOT_JSON = "not_json"
    MISSING_BATTERY = "missing_battery"
    LAT_OUT_OF_RANGE = "lat_out_of_range"
    BATTERY_OUT_OF_RANGE = "battery_out_of_range"
    WRONG_TYPE = "wrong_type"


def malformed_payload(reading: Reading, kind: MalformedKind) -> bytes:
    """Corrupt ``reading`` in the way ``kind`` names; the result fails ``parse_telemetry``."""
    if kind is MalformedKind.NOT_JSON:
        whole = orjson.dumps(reading)
        return whole[: len(whole) // 2]  # a truncated object is never valid JSON
    bad = dict(reading)
    if kind is MalformedKind.MISSING_BATTERY:
        del bad["battery_pct"]
    elif kind is MalformedKind.LAT_OUT_OF_RANGE:
        bad["lat"] = 200.0
    elif kind is MalformedKind.BATTERY_OUT_OF_RANGE:
        bad["battery_pct"] = 140.0
    else:
        bad["lat"] = str(bad["lat"])  # number sent as a string: rejected by strict validation
    return orjson.dumps(bad)


@dataclass(slots=True)
class FaultCounts:
    """How many message faults were injected, for the run's statistics."""

    duplicates: int = 0
    out_of_order: int = 0
    malformed: int = 0


class MessageFaults:
    """Turns each reading into the payloads to publish, injecting message faults at ``rates``.

    Out-of-order holds a drone's payload back and releases it right after that drone's next
    one, so consumers see the two sequence numbers swapped.
    """

    _KINDS = tuple(MalformedKind)

    def __init__(self, rates: FaultRates) -> None:
        self.rates = rates
        self.counts = FaultCounts()
        self._held: dict[str, bytes] = {}
        self._next_kind = 0

    def emit(self, drone_id: str, reading: Reading, rng: random.Random) -> list[bytes]:
        """Payloads to publish now for ``reading``, in order (empty when it is held back)."""
        rates = self.rates
        if rates.malformed and rng.random() < rates.malformed:
            payload = self._malformed(reading)
        else:
            payload = orjson.dumps(reading)
        held = self._held.pop(drone_id, None) if self._held else None
        if held is None and rates.out_of_order and rng.random() < rates.out_of_order:
            self._held[drone_id] = payload
            self.counts.out_of_order += 1
            return []
        out = [payload]
        if rates.duplicate and rng.random() < rates.duplicate:
            out.append(payload)
            self.counts.duplicates += 1
        if held is not None:
            out.append(held)
        return out

    def flush(self) -> list[tuple[str, bytes]]:
        """Release every held-back payload (end of run) as ``(drone_id, payload)`` pairs."""
        held, self._held = list(self._held.items()), {}
        return held

    def _malformed(self, reading: Reading) -> bytes:
        kind = self._KINDS[self._next_kind]
        self._next_kind = (self._next_kind + 1) % len(self._KINDS)
        self.counts.malformed += 1
        return malformed_payload(reading, kind)
