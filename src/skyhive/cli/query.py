"""`skyhive query "SELECT ..."`: read-only SQL over the Parquet archive with DuckDB, on this
machine (no server needed); also how `skyhive archive kpis` prints its answers."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from skyhive.cli.common import settings_of

if TYPE_CHECKING:
    from skyhive.adapters.archive_sql import ArchiveSQL, QueryResult

FORMATS = ("table", "json", "csv")

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="A table, one JSON object (columns, rows), or CSV with a header.",
)
archive_option = click.option(
    "--archive",
    "archive_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The archive's folder [SKYHIVE_HISTORY__ARCHIVE_DIR, or <data dir>/archive].",
)


def archive_sql(ctx: click.Context, archive_dir: Path | None) -> ArchiveSQL:
    """The DuckDB engine over the archive, with the settings' time limit and row cap."""
    from skyhive.adapters.archive_sql import ArchiveSQL
    from skyhive.adapters.parquet_archive import ParquetArchive

    s = settings_of(ctx)
    archive = ParquetArchive(archive_dir or s.archive_path())
    if not archive.days():
        click.echo(
            f"the archive at {archive.root} has no day yet (`skyhive archive export`): "
            "every table is empty",
            err=True,
        )
    return ArchiveSQL(archive, s.history.query_timeout_s, s.history.query_max_rows)


def print_result(result: QueryResult, fmt: str, title: str | None = None) -> None:
    """One answer in the format asked; a table says how many rows and whether they were cut."""
    import orjson

    if fmt == "json":
        body = {
            "columns": result.columns,
            "rows": result.json_rows(),
            "truncated": result.truncated,
        }
        if title:
            body = {"kpi": title, **body}
        click.echo(orjson.dumps(body).decode())
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(["" if v is None else v for v in row] for row in result.json_rows())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*result.columns, title=title, title_justify="left")
    for row in result.json_rows():
        table.add_row(*("∅" if v is None else str(v) for v in row))
    console = Console()
    console.print(table)
    note = f"{len(result.rows)} row(s) in {result.elapsed_s * 1000:.0f} ms"
    if result.truncated:
        note += (
            f"; more were found: the first {len(result.rows)} are shown "
            "(SKYHIVE_HISTORY__QUERY_MAX_ROWS)"
        )
    console.print(note, style="dim")


@click.command()
@click.argument("sql")
@format_option
@archive_option
@click.pass_context
def query(ctx: click.Context, sql: str, fmt: str, archive_dir: Path | None) -> None:
    """Run one read-only SQL query (SELECT or WITH ... SELECT) over the archive.

    The views are telemetry, deliveries, alerts, drones and stations, each with its `date`
    partition column; e.g. skyhive query "SELECT date, count(*) FROM telemetry GROUP BY 1".
    Times are UTC. Stopped after SKYHIVE_HISTORY__QUERY_TIMEOUT_S, at most
    SKYHIVE_HISTORY__QUERY_MAX_ROWS rows.
    """
    from skyhive.adapters.archive_sql import QueryRefused, QueryTimeout

    engine = archive_sql(ctx, archive_dir)
    try:
        result = engine.query(sql)
    except (QueryRefused, QueryTimeout) as exc:
        raise click.ClickException(str(exc)) from None
    print_result(result, fmt)
