"""The fleet KPI SQL (``domain/kpis.py``) over a window's live records: each request gets a
fresh in-memory DuckDB whose tables are the rows handed in, typed as the archive's
(``arrow_table`` of ``adapters/parquet_archive.py``, plus the ``date`` partition column), so
the SQL runs exactly as it does over the Parquet archive. Once the tables are registered the
connection loses file and network access and its configuration is locked, as the archive's
is; each statement runs under the archive's time limit (``run_statement``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from skyhive.adapters.archive_sql import json_value, run_statement
from skyhive.adapters.parquet_archive import arrow_table
from skyhive.domain.archive import PARTITION, TABLES
from skyhive.domain.kpis import Kpi


def _table(name: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    typed = arrow_table(name, rows)
    return typed.append_column(PARTITION, pa.array([r[PARTITION] for r in rows], pa.date32()))


class LiveKpis:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def run(
        self, kpis: Sequence[Kpi], tables: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> dict[str, list[dict[str, Any]]]:
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone = 'UTC'")
            for name in TABLES:
                con.register(name, _table(name, tables.get(name, ())))
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            out = {}
            for kpi in kpis:
                result = run_statement(con, kpi.sql, None, self.timeout_s)
                out[kpi.name] = [
                    {c: json_value(v) for c, v in zip(result.columns, row, strict=True)}
                    for row in result.rows
                ]
            return out
        finally:
            con.close()
