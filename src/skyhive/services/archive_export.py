"""The columnar archive's export: each closed day of raw readings (and that day's deliveries
and alerts, with the registry and stations as they are) to Parquet, checked against MongoDB,
recorded in the manifest; and the nightly task that exports every closed day retention
still keeps and the archive lacks, before retention may remove it.

Idempotent: a day exported again writes the same files (byte for byte, while its records are
unchanged). Verified: after writing, the readings MongoDB holds for the day are counted again
and must be exactly the telemetry file's rows, read back from the file; only then does
:meth:`ArchiveExporter.exported_and_verified` say yes, which retention asks before it removes
a day's raw readings. A day whose raw readings retention has already thinned is never
exported again over its complete file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

from skyhive.domain.archive import (
    SCHEMA_VERSION,
    ExportRecord,
    TableFile,
    alert_row,
    check_closed,
    delivery_row,
    drone_row,
    epoch_ms,
    first_kept_day,
    ordered,
    reading_row,
    retained_days,
    station_row,
)
from skyhive.domain.deliveries import TERMINAL
from skyhive.ports.archive import ArchiveManifest, ArchiveSource, ArchiveStore
from skyhive.ports.clock import Clock

log = logging.getLogger(__name__)

LEASE_S = 3600.0  # renewed before each day; another archiver takes over once it expires


class ArchiveError(Exception):
    """An export or check that cannot be done as asked (the message says why)."""


def _mismatch(in_mongo: int, in_file: TableFile | None) -> tuple[str, ...]:
    if in_file is None:
        return ("no telemetry file",)
    if in_file.rows != in_mongo:
        return (f"MongoDB holds {in_mongo} readings of the day, the file {in_file.rows}",)
    return ()


class ArchiveExporter:
    def __init__(
        self,
        source: ArchiveSource,
        store: ArchiveStore,
        manifest: ArchiveManifest,
        clock: Clock,
        *,
        raw_days: int,
        expires: bool,
        holder: str,
    ) -> None:
        self._source = source
        self._store = store
        self._manifest = manifest
        self._clock = clock
        self._raw_days = raw_days
        self._expires = expires  # retention removes raw readings after raw_days
        self.holder = holder  # this process, in the export lease

    # --- one day ------------------------------------------------------------------------------

    def _telemetry(
        self, day: date, on_rows: Callable[[int], object] | None
    ) -> Iterator[list[dict[str, Any]]]:
        for readings in self._source.readings(day):
            rows = [reading_row(r) for r in readings]
            if on_rows is not None:
                on_rows(len(rows))
            yield rows

    def _deliveries(self, day: date) -> tuple[TableFile, int]:
        """The day's deliveries file, and how many of them had not ended yet."""
        rows = [delivery_row(d) for d in self._source.deliveries(day)]
        still_open = sum(r["status"] not in TERMINAL for r in rows)
        return self._store.write("deliveries", day, [ordered("deliveries", rows)]), still_open

    def _incomplete(self, day: date, exported_at: datetime) -> tuple[str, ...]:
        """Whether retention had begun removing the day's readings when it was exported."""
        if self._expires and day < first_kept_day(exported_at, self._raw_days):
            return (
                f"exported after retention (SKYHIVE_HISTORY__RAW_DAYS={self._raw_days}) began "
                "removing the day's readings: the files hold what was left",
            )
        return ()

    def _guard(self, day: date) -> None:
        """Refuse to write a day again over a verified file holding readings MongoDB no longer
        has (retention removed them): the archive is then their only copy."""
        known = self._manifest.get(day)
        if known is None or not known.verified:
            return
        held = self._source.count_readings(day)
        if held < known.rows:
            raise ArchiveError(
                f"{day} is archived and verified with {known.rows} readings; MongoDB holds "
                f"{held} of them now (retention has removed raw readings): exporting it again "
                "would lose the others"
            )

    def export_day(
        self,
        day: date,
        now: datetime | None = None,
        on_rows: Callable[[int], object] | None = None,
    ) -> ExportRecord:
        """Export every table of a closed day, check it and record it. ``on_rows`` is told
        each drone's readings as they are written (progress)."""
        now = now or self._clock.now()
        check_closed(day, now)
        self._guard(day)
        files = {"telemetry": self._store.write("telemetry", day, self._telemetry(day, on_rows))}
        files["deliveries"], still_open = self._deliveries(day)
        snapshots: dict[str, list[dict[str, Any]]] = {
            "alerts": [alert_row(a) for a in self._source.alerts(day)],
            "drones": [drone_row(d) for d in self._source.drones()],
            "stations": [station_row(s) for s in self._source.stations()],
        }
        for table, rows in snapshots.items():
            files[table] = self._store.write(table, day, [ordered(table, rows)])
        held = self._source.count_readings(day)
        problems = _mismatch(held, files["telemetry"]) + self._incomplete(day, now)
        record = ExportRecord(day, now, files, held, not problems, still_open, problems=problems)
        self._manifest.put(record)
        log.info(
            "archived %s: %d readings%s, %d deliveries, %d alerts%s",
            day,
            files["telemetry"].rows,
            "" if files["telemetry"].rows else " (no history that day: empty files written)",
            files["deliveries"].rows,
            files["alerts"].rows,
            "" if record.verified else f"; NOT verified: {'; '.join(problems)}",
        )
        return record

    def refresh_deliveries(self, day: date) -> ExportRecord:
        """Write a day's deliveries again (some were still under way at its export), leaving
        its readings as they are."""
        known = self._manifest.get(day)
        if known is None:
            raise ArchiveError(f"{day} has not been exported")
        deliveries, still_open = self._deliveries(day)
        tables = {**known.tables, "deliveries": deliveries}
        record = ExportRecord(
            day,
            known.exported_at,
            tables,
            known.readings_in_mongo,
            known.verified,
            still_open,
            problems=known.problems,
        )
        self._manifest.put(record)
        return record

    def verify(self, day: date) -> tuple[ExportRecord, str]:
        """Check an exported day again: every file still as recorded, and MongoDB's readings
        of the day against the telemetry file. Returns the record (updated) and what was
        found. A verified day whose raw readings retention has since removed stays verified
        while its files are unchanged."""
        known = self._manifest.get(day)
        if known is None:
            raise ArchiveError(f"{day} has not been exported: `skyhive archive export --day {day}`")
        problems = list(self._incomplete(day, known.exported_at))
        found: dict[str, TableFile | None] = {}
        for table, recorded in known.tables.items():
            try:
                on_disk = found[table] = self._store.read_back(table, day)
            except ValueError as exc:  # not a Parquet file of this schema version
                problems.append(f"{table}: the file is unreadable ({exc})")
                continue
            if on_disk is None:
                problems.append(f"{table}: the file is missing")
            elif (on_disk.rows, on_disk.sha256) != (recorded.rows, recorded.sha256):
                problems.append(f"{table}: the file changed since its export")
        held = self._source.count_readings(day)
        note = f"MongoDB holds {held} readings of {day}; the file {known.rows}"
        if known.verified and held < known.rows and not problems:
            note += " (retention has removed raw readings; the archive is their copy)"
        else:
            problems.extend(_mismatch(held, found.get("telemetry")))
        record = ExportRecord(
            day,
            known.exported_at,
            known.tables,
            known.readings_in_mongo,
            not problems,
            known.open_deliveries,
            problems=tuple(problems),
        )
        self._manifest.put(record)
        return record, note

    def records(self) -> list[ExportRecord]:
        """Every exported day, oldest first."""
        return self._manifest.all()

    def exported_and_verified(self, day: date) -> bool:
        """What retention asks before removing a day's raw readings: the day is recorded as
        exported and verified in this schema version, and its telemetry file is on disk with
        the rows recorded."""
        known = self._manifest.get(day)
        return (
            known is not None
            and known.verified
            and known.schema_version == SCHEMA_VERSION
            and self._store.rows("telemetry", day) == known.rows
        )

    # --- nightly ------------------------------------------------------------------------------

    def _due(self, day: date) -> str | None:
        """Why the nightly task must export ``day`` (or refresh its deliveries), or None."""
        known = self._manifest.get(day)
        if known is None:
            return "export"
        if not known.verified or known.schema_version != SCHEMA_VERSION:
            return "export"
        return "deliveries" if known.open_deliveries else None

    def run_due(self, now: datetime) -> list[ExportRecord]:
        """Export every closed day within retention that the archive lacks or could not
        verify (and refresh the deliveries of days exported while some were under way).
        One archiver at a time: the others find the lease held and return at once."""
        done: list[ExportRecord] = []
        hold_ms = int(LEASE_S * 1000)
        if not self._manifest.claim(self.holder, epoch_ms(now), hold_ms):
            return done
        try:
            for day in retained_days(now, self._raw_days):
                work = self._due(day)
                if work is None:
                    continue
                if not self._manifest.claim(self.holder, epoch_ms(self._clock.now()), hold_ms):
                    log.warning("archive export lease lost; another archiver goes on")
                    break
                try:
                    if work == "export":
                        done.append(self.export_day(day, now))
                    else:
                        done.append(self.refresh_deliveries(day))
                except ArchiveError as exc:
                    log.warning("archive export of %s skipped: %s", day, exc)
        finally:
            self._manifest.release(self.holder)
        return done
