"""Read-only SQL over the Parquet archive (DuckDB, ``adapters/archive_sql.py``), for admins:
the same as `skyhive query`. One ``SELECT`` (or ``WITH ... SELECT``) over the views
``telemetry``, ``deliveries``, ``alerts``, ``drones`` and ``stations``; anything else is
refused (400, with DuckDB's message where DuckDB refused it). A query running past
``SKYHIVE_HISTORY__QUERY_TIMEOUT_S`` is stopped and answered 408; at most
``SKYHIVE_HISTORY__QUERY_MAX_ROWS`` rows come back (``truncated`` says when there were more).
Admins only: the archive holds every drone's history and every customer's deliveries."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from skyhive.api.errors import ApiError
from skyhive.api.operation import ADMIN, operation
from skyhive.api.responses import current_clients, json_response

bp = APIBlueprint("query", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="query")])


class QueryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(
        min_length=1,
        max_length=20_000,
        description="One read-only query, e.g. `SELECT date, count(*) FROM telemetry GROUP BY 1`.",
    )


class QueryAnswer(BaseModel):
    """The rows as arrays in column order; times in ISO 8601 UTC, decimals as strings."""

    columns: list[str]
    types: list[str] = Field(description="DuckDB's type of each column.")
    rows: list[list[Any]]
    count: int = Field(ge=0, description="Length of `rows`.")
    truncated: bool = Field(
        description="More rows were found than `max_rows`; these are the first."
    )
    max_rows: int = Field(ge=1)
    elapsed_ms: float = Field(ge=0)


@operation(bp.post, "/query", access=ADMIN, ok=QueryAnswer, errors=(408,))
def run_query(body: QueryBody) -> Response:
    """Run one read-only SQL query over the archive (DuckDB)."""
    from skyhive.adapters.archive_sql import QueryRefused, QueryTimeout

    engine = current_clients().archive_sql
    try:
        result = engine.query(body.sql)
    except QueryRefused as exc:
        raise ApiError(400, str(exc), "sql") from None
    except QueryTimeout as exc:
        raise ApiError(408, str(exc), "sql") from None
    rows = result.json_rows()
    return json_response(
        {
            "columns": result.columns,
            "types": result.types,
            "rows": rows,
            "count": len(rows),
            "truncated": result.truncated,
            "max_rows": engine.max_rows,
            "elapsed_ms": round(result.elapsed_s * 1000, 1),
        }
    )
