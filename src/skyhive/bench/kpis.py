"""The fleet KPI queries timed on DuckDB and on Spark in local mode, over one archive
(`skyhive bench kpis --archive DIR`; a month of it: `skyhive simulate --history 30d`, then
`skyhive archive export --from ... --to ...`).

Each KPI (``domain/kpis.py``, the same SQL on both engines) is run ``repeats`` times on each
and its median wall time reported: on DuckDB a fresh in-memory database over the archive's
views each time (as `skyhive query` runs); on Spark one session (its start-up reported
apart), every row collected to the driver. Both read the Parquet files as they are, from
this machine's disk.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from skyhive.adapters.archive_sql import ArchiveSQL
from skyhive.adapters.parquet_archive import ParquetArchive
from skyhive.bench.stack import Progress
from skyhive.domain.kpis import KPIS


@dataclass
class KpiTiming:
    kpi: str
    rows: int
    duckdb_s: float
    spark_s: float | None = None


@dataclass
class KpiReport:
    archive: str
    days: int
    readings: int
    repeats: int
    spark_master: str | None
    spark_start_s: float | None = None
    timings: list[KpiTiming] = field(default_factory=list)

    @property
    def duckdb_total_s(self) -> float:
        return sum(t.duckdb_s for t in self.timings)

    @property
    def spark_total_s(self) -> float | None:
        spark = [t.spark_s for t in self.timings if t.spark_s is not None]
        return sum(spark) if spark else None


def _median_s(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_kpis_bench(
    archive_dir: Path,
    repeats: int = 3,
    spark_master: str | None = "local[*]",
    progress: Progress = print,
) -> KpiReport:
    """Time every KPI on DuckDB, then on Spark (``spark_master`` None: DuckDB only)."""
    archive = ParquetArchive(archive_dir)
    days = archive.days()
    if not days:
        raise ValueError(f"the archive at {archive_dir} has no day: export some first")
    engine = ArchiveSQL(archive, timeout_s=3600, max_rows=1)
    readings = int(engine.query("SELECT count(*) FROM telemetry").rows[0][0])
    report = KpiReport(str(archive_dir), len(days), readings, repeats, spark_master)
    progress(f"{len(days)} day(s), {readings} readings; DuckDB, {repeats} run(s) per KPI")
    for kpi in KPIS:
        rows = len(engine.kpis([kpi.name])[kpi.name].rows)
        seconds = _median_s(partial(engine.kpis, [kpi.name]), repeats)
        report.timings.append(KpiTiming(kpi.name, rows, seconds))
    if spark_master is not None:
        _time_spark(report, archive_dir, spark_master, repeats, progress)
    return report


def _time_spark(
    report: KpiReport, archive_dir: Path, master: str, repeats: int, progress: Progress
) -> None:
    from skyhive.adapters.spark_kpis import compute, session

    progress(f"Spark ({master}), {repeats} run(s) per KPI")
    started = time.perf_counter()
    spark = session(
        master, **{"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
    )
    spark.sparkContext.setLogLevel("ERROR")
    report.spark_start_s = time.perf_counter() - started
    try:
        for timing in report.timings:
            frames = compute(spark, str(archive_dir.resolve()), [timing.kpi])
            frame = frames[timing.kpi]
            timing.spark_s = _median_s(frame.collect, repeats)
    finally:
        spark.stop()
