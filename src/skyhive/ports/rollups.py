"""The rollups ports: the readings a rollup is summed up from (``adapters/telemetry_repo.py``)
and where rollups and the minutes pending are kept (``adapters/rollups_repo.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from skyhive.domain.history import Bucket
from skyhive.domain.rollups import Level, Rollup

Key = tuple[str, datetime]  # (drone, minute start)


class HistoryReader(Protocol):
    def readings_of(
        self, drone_ids: Sequence[str], since: datetime, until: datetime
    ) -> dict[str, list[dict[str, Any]]]:
        """Every reading of these drones in [since, until), each once, oldest first."""

    def touched(self, since: datetime, until: datetime) -> set[tuple[str, datetime]]:
        """(drone, time) of every stored document of history in [since, until)."""


class RollupStore(Protocol):
    def write(self, rollups: Sequence[Rollup]) -> int:
        """Write each rollup unless a figure of more readings is stored."""

    def lasts(
        self, drone_ids: Sequence[str], since: datetime, until: datetime
    ) -> dict[str, dict[datetime, dict[str, Any]]]:
        """The last reading of each stored minute of these drones in [since, until), by
        drone and minute."""

    def minutes(
        self, drone_ids: Sequence[str], since: datetime, until: datetime
    ) -> list[dict[str, Any]]:
        """The stored minute rollups of these drones in [since, until)."""

    def series(
        self,
        drone_id: str,
        level: Level,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """A drone's rollups of one level in [since, until), newest first."""

    def alert_counts(
        self, drone_ids: Sequence[str], since: datetime, until: datetime
    ) -> dict[Key, int]:
        """Alerts opened per (drone, minute) in [since, until)."""

    def mark(self, level: Level, keys: Iterable[Key], now: datetime) -> None:
        """Mark these periods pending (minutes: before their readings are acknowledged)."""

    def pending(
        self, level: Level, before: datetime, limit: int, marked_before: datetime | None = None
    ) -> list[tuple[Key, int]]:
        """Pending periods that started before ``before`` (or were first marked before
        ``marked_before``), oldest first, with a version."""

    def clear(self, level: Level, done: Iterable[tuple[Key, int]]) -> None:
        """Forget these periods, each only at the version given."""


class RollupKeeper(Protocol):
    """What the archiver asks of the rollups (``services/rollups.DroneRollups``)."""

    def note(self, buckets: Sequence[Bucket]) -> None:
        """Mark the minutes of these just-written buckets pending."""

    def roll_due(self, force: bool = False, idle: bool = False) -> int:
        """Sum up the pending minutes that closed; returns how many (``idle``: the archiver
        had nothing to read)."""
