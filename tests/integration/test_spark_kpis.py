"""The fleet KPIs with Spark in local mode (``adapters/spark_kpis.py``, which the job
jobs/fleet_kpis.py runs) against DuckDB on the same archive: a known day (archive_data)
written through the real repositories and exported, the KPIs computed by both engines from
the one SQL (``skyhive.domain.kpis``), compared row by row, and checked against figures
worked out by hand from the records. One Spark session for the module."""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
import pytest
from archive_data import AFTER, D1_STEP_LAT, D2_STEP_LON, DAY, LAT, LON, make_day

from manual_clock import ManualClock
from skyhive.adapters.spark_kpis import compute
from skyhive.domain.geo import haversine_m
from skyhive.domain.kpis import KPIS
from skyhive.wiring import Clients

pytestmark = pytest.mark.spark

JOB = Path(__file__).resolve().parents[2] / "jobs" / "fleet_kpis.py"
NEXT = DAY + timedelta(days=1)
# Sums and averages of floats may differ in their last bits between the engines (the order
# of addition, the JVM's and C's sin/cos); everything else must be equal.
REL = 1e-9


def _job() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fleet_kpis", JOB)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("skyhive-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.sql.session.timeZone", "UTC")
        # Kilobytes of data: compiling whole stages and re-planning them cost more than they save.
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.adaptive.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _archive(clients: Clients) -> Path:
    """DAY and the day after exported; the archive's root."""
    make_day(clients)
    clients.__dict__["clock"] = ManualClock(AFTER + timedelta(days=1))
    for day in (DAY, NEXT):
        assert clients.archive_exporter.export_day(day).verified
    return clients.settings.archive_path()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=REL, abs_tol=REL)
    return type(a) is type(b) and bool(a == b)


def test_spark_and_duckdb_agree_and_match_the_figures_by_hand(clients: Clients, spark: Any) -> None:
    root = _archive(clients)
    duck = {name: r.records() for name, r in clients.archive_sql.kpis().items()}
    frames = compute(spark, str(root))
    sparked = {name: [row.asDict() for row in df.collect()] for name, df in frames.items()}

    assert list(sparked) == list(duck) == [k.name for k in KPIS]
    for name, rows in duck.items():
        assert len(sparked[name]) == len(rows), name
        for mine, theirs in zip(rows, sparked[name], strict=True):
            assert list(mine) == list(theirs), name  # the same columns, in the same order
            assert all(_same(mine[c], theirs[c]) for c in mine), (name, mine, theirs)

    # By hand, from archive_data.
    times = {r["station"]: r for r in duck["delivery_times"]}
    assert set(times) == {"*", "12TH"}  # EMBR delivered nothing
    everything = times["*"]  # A 1200 s, B 2100 s, C 720 s
    assert (everything["deliveries"], everything["p50_s"], everything["p90_s"]) == (
        3,
        1200.0,
        2100.0,
    )
    assert (everything["p99_s"], everything["max_s"]) == (2100.0, 2100.0)
    assert everything["mean_s"] == pytest.approx(1340.0)

    on_time = {r["station"]: r for r in duck["on_time"]}["*"]  # A and C by their ETA, B late
    assert (on_time["delivered"], on_time["with_eta"], on_time["on_time"]) == (3, 3, 2)
    assert on_time["on_time_rate"] == pytest.approx(2 / 3)

    assert [(r["outcome"], r["reason"], r["deliveries"]) for r in duck["outcome_reasons"]] == [
        ("cancelled", "cancelled by request", 1),
        ("failed", "drone reported failure: insufficient battery", 1),
    ]

    hours = [
        (r["station"], r["day"], r["hour"], r["orders"], r["pickups"], r["pickups_per_pad"],
         r["mean_wait_s"], r["max_wait_s"])
        for r in duck["station_hours"]
    ]  # fmt: skip
    assert hours == [
        ("12TH", DAY, 9, 2, 2, 0.5, 120.0, 180.0),  # A waited 60 s, B 180 s; 4 pads
        ("12TH", DAY, 10, 1, 1, 0.25, 30.0, 30.0),
        ("12TH", DAY, 23, 1, 0, 0.0, 120.0, 120.0),  # G ordered at 23:50...
        ("12TH", NEXT, 0, 0, 1, 0.25, None, None),  # ...and picked up after midnight
        ("EMBR", DAY, 9, 1, 1, 0.25, 120.0, 120.0),
        ("EMBR", DAY, 11, 1, 0, 0.0, None, None),  # E, cancelled before any drone
    ]

    use = {(r["day"], r["drone_id"]): r for r in duck["drone_utilisation"]}
    d1 = use[(DAY, "d-1")]  # 60 s flying, 30 idle, 29 charging, then silent until 23:59:59
    assert (d1["readings"], d1["flight_s"], d1["idle_s"], d1["charging_s"]) == (
        121,
        60.0,
        30.0,
        29.0,
    )
    assert d1["flight_share"] == pytest.approx(60 / 119)
    d2 = use[(DAY, "d-2")]  # 9 s + 9 s in flight: the five silent minutes count as unknown
    assert (d2["flight_s"], d2["observed_s"], d2["flight_share"]) == (18.0, 18.0, 1.0)
    assert use[(DAY, "d-3")]["observed_s"] == 120.0 and use[(DAY, "d-3")]["flight_s"] == 0.0
    # The step over midnight counts in the day of its later reading, idle for 1 ms.
    nxt = use[(NEXT, "d-1")]
    assert (nxt["readings"], nxt["idle_s"], nxt["flight_share"]) == (1, 0.001, 0.0)

    energy = {r["model"]: r for r in duck["energy_per_km"]}
    # 60 steps from a reading in flight (the last one lands idle); d-2's silence is not flown.
    x4_km = 60 * haversine_m(LAT, LON, LAT + D1_STEP_LAT, LON) / 1000
    x8_km = 18 * haversine_m(LAT, LON, LAT, LON + D2_STEP_LON) / 1000  # 9 + 9 legs
    assert energy["x4"]["km"] == pytest.approx(x4_km, rel=1e-6)
    assert energy["x4"]["energy_wh"] == pytest.approx(60 * 0.1 * 500 / 100)
    assert energy["x8"]["energy_wh"] == pytest.approx(18 * 0.2 * 800 / 100)
    assert energy["x8"]["wh_per_km"] == pytest.approx(28.8 / x8_km, rel=1e-6)
    assert {r["drones"] for r in energy.values()} == {1}

    alerts = [
        (r["type"], r["station"], r["alerts"], r["critical"])
        for r in duck["alerts_by_type_station"]
    ]
    assert alerts == [("low_battery", "12TH", 1, 1), ("offline", "?", 1, 0)]


def test_the_job_writes_each_kpi_to_its_own_folder(
    clients: Clients, spark: Any, tmp_path: Path
) -> None:
    root = _archive(clients)
    job = _job()
    out = tmp_path / "kpis"
    args = ["--archive", str(root), "--out", str(out), "--kpi", "on_time"]
    assert job.main([*args, "--kpi", "energy_per_km"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["energy_per_km", "on_time"]
    table = pq.read_table(out / "on_time")
    assert table.column_names == ["station", "delivered", "with_eta", "on_time", "on_time_rate"]
    assert table.to_pylist()[0] == {
        "station": "*",
        "delivered": 3,
        "with_eta": 3,
        "on_time": 2,
        "on_time_rate": pytest.approx(2 / 3),
    }
    assert job.main([*args, "--format", "json"]) == 0  # replaces the earlier run's
    [part] = (out / "on_time").glob("part-*.json")
    lines = [json.loads(line) for line in part.read_text().splitlines()]
    assert [line["station"] for line in lines] == ["*", "12TH"]
    assert not list((out / "on_time").glob("part-*.parquet"))
    assert spark.sparkContext._jsc is not None  # the job left the tests' session running


def test_empty_archive_days_still_give_typed_answers(clients: Clients, spark: Any) -> None:
    make_day(clients)
    quiet = date(2026, 11, 1)
    assert clients.archive_exporter.export_day(quiet).rows == 0
    root = clients.settings.archive_path()
    frames = compute(spark, str(root), ["drone_utilisation", "on_time"])
    assert frames["drone_utilisation"].count() == 0
    assert [r.asDict() for r in frames["on_time"].collect()] == []
    assert clients.archive_sql.kpis(["on_time"])["on_time"].rows == []
