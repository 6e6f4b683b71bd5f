"""The KPI SQL (``domain/kpis.py``) and the query engine's own rules, on DuckDB over small
archives written here (no server): nearest-rank percentiles, typed empty answers, JSON-safe
values, and the read-only check by DuckDB's parser."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from skyhive.adapters.archive_sql import ArchiveSQL, QueryRefused, json_value, read_only_statement
from skyhive.adapters.parquet_archive import ParquetArchive
from skyhive.bench.kpis import run_kpis_bench
from skyhive.domain.kpis import KPIS

DAY = date(2026, 11, 23)
NINE = datetime(2026, 11, 23, 9, tzinfo=UTC)


def _engine(root: Path) -> ArchiveSQL:
    return ArchiveSQL(ParquetArchive(root), timeout_s=30, max_rows=1000)


def _delivered(i: int, station: str, seconds: float) -> dict[str, Any]:
    return {
        "delivery_id": f"x{i:04d}",
        "customer_id": "c",
        "pickup_station": station,
        "status": "delivered",
        "created_at": NINE,
        "delivered_at": NINE + timedelta(seconds=seconds),
        "delivery_s": seconds,
    }


def _nearest_rank(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[(p * len(ordered) + 99) // 100 - 1]  # the ceil(p/100 * n)-th, from 1


@pytest.mark.parametrize("n", [1, 2, 3, 10, 20, 99, 100, 101, 257])
def test_percentiles_are_nearest_rank(tmp_path: Path, n: int) -> None:
    rng = random.Random(n)
    values = [float(rng.randrange(60, 3600, 30)) for _ in range(n)]  # ties included
    stations = ["12TH", "EMBR"]
    rows = [_delivered(i, stations[i % 2], v) for i, v in enumerate(values)]
    ParquetArchive(tmp_path).write("deliveries", DAY, [rows])

    result = _engine(tmp_path).kpis(["delivery_times"])["delivery_times"].records()
    by_station = {r["station"]: r for r in result}
    groups = {"*": values, **{s: values[i::2] for i, s in enumerate(stations) if values[i::2]}}
    assert set(by_station) == set(groups)
    for station, sample in groups.items():
        got = by_station[station]
        assert got["deliveries"] == len(sample)
        for p in (50, 90, 95, 99):
            assert got[f"p{p}_s"] == _nearest_rank(sample, p), (station, p)
        assert got["max_s"] == max(sample)


def test_every_kpi_answers_an_empty_archive_with_its_columns(tmp_path: Path) -> None:
    results = _engine(tmp_path).kpis()
    assert list(results) == [k.name for k in KPIS]
    for result in results.values():
        assert result.rows == [] and result.columns and not result.truncated


def test_values_are_made_json_safe() -> None:
    at = datetime(2026, 11, 23, 9, 30, 0, 123000, tzinfo=UTC)
    assert json_value(at) == "2026-11-23T09:30:00.123000Z"
    assert json_value(at.replace(tzinfo=None)) == "2026-11-23T09:30:00.123000"
    assert json_value(date(2026, 11, 23)) == "2026-11-23"
    assert json_value(time(9, 30)) == "09:30:00"
    assert json_value(Decimal("7.90")) == "7.90"
    assert json_value(timedelta(minutes=2)) == 120.0
    assert json_value(2**70) == str(2**70) and json_value(2**62) == 2**62
    assert json_value(float("nan")) is None and json_value(float("inf")) is None
    assert json_value(b"\x00\x01") == "AAE="
    assert json_value(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert json_value({"a": [Decimal("1.5"), None, True]}) == {"a": ["1.5", None, True]}


def test_only_one_select_passes_the_parser() -> None:
    assert read_only_statement("WITH a AS (SELECT 1 AS x) SELECT x FROM a;") is not None
    for sql, says in (
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("   ", "exactly one statement (this has 0)"),
        ("UPDATE t SET x = 1", "this is UPDATE"),
        ("EXPLAIN SELECT 1", "this is EXPLAIN"),
        ("ATTACH 'other.db'", "this is ATTACH"),
        ("PRAGMA version", "this is PRAGMA"),
        ("SELECT FROM WHERE", "syntax error"),
    ):
        with pytest.raises(QueryRefused) as refused:
            read_only_statement(sql)
        assert says in str(refused.value), sql


def test_the_kpi_benchmark_times_every_kpi(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no day"):
        run_kpis_bench(tmp_path, spark_master=None)
    archive = ParquetArchive(tmp_path)
    archive.write("telemetry", DAY, [])
    archive.write("deliveries", DAY, [[_delivered(1, "12TH", 600.0)]])
    said: list[str] = []
    report = run_kpis_bench(tmp_path, repeats=1, spark_master=None, progress=said.append)
    assert [t.kpi for t in report.timings] == [k.name for k in KPIS]
    assert {t.kpi: t.rows for t in report.timings}["delivery_times"] == 2  # 12TH and *
    assert all(t.duckdb_s > 0 and t.spark_s is None for t in report.timings)
    assert report.spark_total_s is None and report.days == 1 and said
