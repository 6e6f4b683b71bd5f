"""The columnar archive's ports: what a day is exported from (MongoDB,
``adapters/archive_source.py``), where it goes (Parquet files,
``adapters/parquet_archive.py``) and the manifest of what was exported and checked, with the
lease that lets one archiver at a time export (MongoDB, ``adapters/archive_manifest.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any, Protocol

from skyhive.domain.alerts import Alert
from skyhive.domain.archive import ExportRecord, TableFile
from skyhive.domain.deliveries import Delivery
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.stations import Station


class ArchiveSource(Protocol):
    def readings(self, day: date) -> Iterator[list[dict[str, Any]]]:
        """The day's readings (``ts`` in the day, UTC), one list per drone, each (drone,
        seq) once, as ``domain/history.unfold`` returns them."""

    def count_readings(self, day: date) -> int:
        """How many distinct (drone, seq) readings the store holds for the day, now."""

    def deliveries(self, day: date) -> list[Delivery]:
        """The deliveries ordered that day."""

    def alerts(self, day: date) -> list[Alert]:
        """The alerts opened that day."""

    def drones(self) -> list[DroneSpec]:
        """The fleet registry."""

    def stations(self) -> list[Station]: ...


class ArchiveStore(Protocol):
    def write(
        self, table: str, day: date, chunks: Iterable[Sequence[Mapping[str, Any]]]
    ) -> TableFile:
        """Write the day's file of ``table`` from rows in chunks (in file order), replacing
        any earlier one atomically: a reader sees the old file or the new, never part."""

    def read_back(self, table: str, day: date) -> TableFile | None:
        """The file as it is on disk (rows from its own metadata), or None; ValueError if
        it is not a Parquet file of this schema version."""

    def rows(self, table: str, day: date) -> int | None:
        """The file's rows from its metadata, without reading it through (None: no file)."""

    def days(self) -> list[date]:
        """The days with a telemetry file, oldest first."""


class ArchiveManifest(Protocol):
    def get(self, day: date) -> ExportRecord | None: ...

    def put(self, record: ExportRecord) -> None: ...

    def all(self) -> list[ExportRecord]:
        """Every record, oldest day first."""

    def claim(self, holder: str, now_ms: int, hold_ms: int) -> bool:
        """Take (or extend) the export lease until ``now_ms + hold_ms`` unless another
        holder has it unexpired."""

    def release(self, holder: str) -> None: ...


class ArchivedDays(Protocol):
    def exported_and_verified(self, day: date) -> bool:
        """Whether the day's raw readings are in the archive and were counted against
        MongoDB: what retention asks before it removes them (``services/archive_export``)."""
