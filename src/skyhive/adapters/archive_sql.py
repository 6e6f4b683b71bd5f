"""SQL over the columnar archive on one machine (DuckDB): `skyhive query`, the admins'
``POST /api/v1/query`` and the KPIs (`skyhive archive kpis`, ``domain/kpis.py``).

Each query gets a fresh in-memory DuckDB with one view per archive table (``telemetry``,
``deliveries``, ``alerts``, ``drones``, ``stations``: ``read_parquet`` of every day's file,
hive partitions, so each has its ``date`` column; an empty typed view for a table with no
file yet), its time zone set to UTC, and then locked down before the caller's SQL runs: no
file or network access beyond the archive folder (``allowed_directories``,
``enable_external_access = false``), and the configuration locked so the query cannot undo
it. A query must be exactly one statement and a ``SELECT`` (``WITH ... SELECT`` included) by
DuckDB's own parser; it is interrupted after the time limit and its rows capped.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any
from uuid import UUID

import duckdb

from skyhive.adapters.parquet_archive import FILE, ParquetArchive
from skyhive.domain.archive import COLUMNS, PARTITION, TABLES
from skyhive.domain.kpis import BY_NAME, KPIS

DUCK_TYPES = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "decimal": "DECIMAL(12,2)",
}


class QueryRefused(ValueError):
    """A query that is not one read-only statement, or that DuckDB rejects (its message)."""


class QueryTimeout(Exception):
    """A query that ran past the time limit (it was interrupted)."""


def json_value(value: Any) -> Any:
    """A DuckDB value as JSON can carry it: times in ISO 8601 (UTC with ``Z``), decimals and
    integers past 64 bits as strings, intervals in seconds, bytes in base64, non-finite
    floats as null."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, date | clock_time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows than the cap: only the first ``len(rows)`` are here
    elapsed_s: float

    def json_rows(self) -> list[list[Any]]:
        return [[json_value(v) for v in row] for row in self.rows]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_only_statement(sql: str) -> duckdb.Statement:
    """The one ``SELECT`` statement of ``sql``, by DuckDB's parser; else QueryRefused."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(str(exc)) from None
    if len(statements) != 1:
        raise QueryRefused(f"send exactly one statement (this has {len(statements)})")
    [statement] = statements
    if statement.type != duckdb.StatementType.SELECT:
        kind = statement.type.name
        raise QueryRefused(
            f"only SELECT queries (WITH ... SELECT included) are run; this is {kind}"
        )
    return statement


def run_statement(
    con: duckdb.DuckDBPyConnection,
    statement: str | duckdb.Statement,
    cap: int | None,
    timeout_s: float,
) -> QueryResult:
    """Run one statement on ``con``, interrupted after ``timeout_s``, at most ``cap`` rows
    (None: all); shared with the live analytics (``adapters/analytics_sql.py``)."""
    timer = threading.Timer(timeout_s, con.interrupt)
    timer.daemon = True
    started = time.monotonic()
    timer.start()
    try:
        cursor = con.execute(statement)
        rows = cursor.fetchall() if cap is None else cursor.fetchmany(cap + 1)
        description = cursor.description or []
    except duckdb.InterruptException:
        raise QueryTimeout(
            f"the query ran past its time limit of {timeout_s:g} s and was stopped"
        ) from None
    except duckdb.Error as exc:
        raise QueryRefused(str(exc)) from None
    finally:
        timer.cancel()
    truncated = cap is not None and len(rows) > cap
    return QueryResult(
        columns=[str(d[0]) for d in description],
        types=[str(d[1]) for d in description],
        rows=rows[:cap] if truncated else rows,
        truncated=truncated,
        elapsed_s=time.monotonic() - started,
    )


class ArchiveSQL:
    def __init__(self, archive: ParquetArchive, timeout_s: float, max_rows: int) -> None:
        self.archive = archive
        self.timeout_s = timeout_s
        self.max_rows = max_rows

    def _view(self, table: str) -> str:
        if self.archive.has(table):
            files = str(self.archive.table_dir(table) / f"{PARTITION}=*" / FILE)
            source = (
                f"read_parquet({_literal(files)}, hive_partitioning = true, "
                f"hive_types = {{'{PARTITION}': DATE}})"
            )
            return f"CREATE VIEW {table} AS SELECT * FROM {source}"
        columns = [f"CAST(NULL AS {DUCK_TYPES[kind]}) AS {name}" for name, kind in COLUMNS[table]]
        columns.append(f"CAST(NULL AS DATE) AS {PARTITION}")
        return f"CREATE VIEW {table} AS SELECT {', '.join(columns)} WHERE false"

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A locked-down connection with the archive's views."""
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone = 'UTC'")
            for table in TABLES:
                con.execute(self._view(table))
            root = str(self.archive.root.resolve())
            con.execute(f"SET allowed_directories = [{_literal(root)}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return con

    def _run(
        self, con: duckdb.DuckDBPyConnection, statement: str | duckdb.Statement, cap: int | None
    ) -> QueryResult:
        return run_statement(con, statement, cap, self.timeout_s)

    def query(self, sql: str) -> QueryResult:
        """Run a caller's read-only query, within the time limit and row cap."""
        statement = read_only_statement(sql)
        con = self.connect()
        try:
            return self._run(con, statement, self.max_rows)
        finally:
            con.close()

    def kpis(self, names: Iterable[str] = ()) -> dict[str, QueryResult]:
        """The fleet KPIs (``domain/kpis.py``; all of them, or those named), every row."""
        chosen = [BY_NAME[n] for n in names] or list(KPIS)
        con = self.connect()
        try:
            return {k.name: self._run(con, k.sql, None) for k in chosen}
        finally:
            con.close()
