"""The live fleet state port: what the processor reads and writes per batch, each in one round
trip (the per-command cost of a client, not the store, dominates a batch at 1,000+
messages/s), and what the offline watch asks about silent drones
(``adapters/drone_memory.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from skyhive.domain.telemetry import Telemetry
from skyhive.ports.active_alerts import AlertSwap


@dataclass(frozen=True, slots=True)
class Recalled:
    """What is remembered of a drone before a batch."""

    memory: str | None  # the alert rules' memory, JSON
    has_alerts: bool
    seen: list[bool]  # per sequence number asked: seen before
    registered: bool


@dataclass(frozen=True, slots=True)
class Recall:
    drones: dict[str, Recalled]
    nearest: dict[str, tuple[str, float]]  # drone → (station code, km), for those asked


@dataclass(slots=True)
class FleetWrite:
    """A batch's writes: the newest reading per drone (and whether it is registered), the
    sequence numbers seen, the rules' memory that changed, the drones heard, and the active
    alerts that changed."""

    updated_at: datetime
    heard_at: datetime
    latest: list[tuple[Telemetry, bool]] = field(default_factory=list)
    seen: dict[str, list[int]] = field(default_factory=dict)
    memory: dict[str, bytes] = field(default_factory=dict)
    heard: list[str] = field(default_factory=list)
    alerts: list[AlertSwap] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Silent:
    drone_id: str
    heard_at: float  # epoch seconds, by the server's clock
    status: str | None  # its last live status


class FleetState(Protocol):
    def recall(
        self,
        seqs: Mapping[str, Sequence[int]],
        near: Mapping[str, tuple[float, float]],
        radius_km: float,
    ) -> Recall:
        """For each drone: which of ``seqs`` were seen, its rules' memory, whether it has
        active alerts and is registered; and the nearest station within ``radius_km`` of
        each (lat, lon) in ``near``."""

    def commit(self, write: FleetWrite) -> list[Telemetry]:
        """Apply the batch's writes; a live state moves only forward (event time, then
        sequence number). Returns the readings that moved their drone, announced to the
        live fleet's watchers."""

    def take_sweep(self, hold_ms: int) -> bool:
        """Whether this caller may run the offline sweep now (one at a time, for ``hold_ms``)."""

    def silent(self, before: float, limit: int) -> list[Silent]:
        """Drones last heard before ``before`` (epoch s), longest silent first."""

    def forget_heard(self, drone_id: str) -> None:
        """Stop watching a drone until it is heard again."""
