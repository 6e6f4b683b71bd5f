"""`skyhive archive`: the Parquet archive of history by hand: export days, check them, list
what is archived, and the fleet KPIs over it (DuckDB). The archivers export each closed day
by themselves (``services/archive_export.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.table import Table

from skyhive.cli.common import clients_of
from skyhive.cli.query import archive_option, archive_sql, format_option, print_result
from skyhive.domain.archive import (
    ExportRecord,
    check_closed,
    days_between,
    last_closed_day,
    parse_day,
)


def _day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    try:
        return parse_day(value) if value else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _records_table(records: list[ExportRecord]) -> Table:
    table = Table(
        "day", "readings", "deliveries", "alerts", "size", "verified", "exported at", "problems"
    )
    for r in records:
        rows = {name: str(t.rows) for name, t in r.tables.items()}
        table.add_row(
            r.day.isoformat(),
            rows.get("telemetry", "-"),
            rows.get("deliveries", "-"),
            rows.get("alerts", "-"),
            _size(sum(t.bytes for t in r.tables.values())),
            "[green]yes[/]" if r.verified else "[red]no[/]",
            f"{r.exported_at:%Y-%m-%d %H:%M}",
            "; ".join(r.problems),
        )
    return table


@click.group()
def archive() -> None:
    """The Parquet archive of history: export, verify, list, KPIs."""


F = TypeVar("F", bound=Callable[..., object])


def _day_options(func: F) -> F:
    for option in reversed(
        (
            click.option("--day", callback=_day, help="YYYY-MM-DD, UTC [yesterday]."),
            click.option("--from", "first", callback=_day, help="First day of a range."),
            click.option("--to", "last", callback=_day, help="Last day [the last closed one]."),
        )
    ):
        func = option(func)
    return func


def _chosen_days(day: date | None, first: date | None, last: date | None) -> list[date]:
    """The days asked, each closed (else a usage error naming the first that is not)."""
    now = datetime.now(UTC)
    if day and (first or last):
        raise click.UsageError("give --day or --from/--to, not both")
    if last and not first:
        raise click.UsageError("--to needs --from")
    try:
        last = last or last_closed_day(now)
        chosen = days_between(first, last) if first else [day or now.date() - timedelta(days=1)]
        for d in chosen:
            check_closed(d, now)
    except ValueError as exc:  # NotClosed is one
        raise click.UsageError(str(exc)) from None
    return chosen


@archive.command("export")
@_day_options
@click.pass_context
def archive_export(
    ctx: click.Context, day: date | None, first: date | None, last: date | None
) -> None:
    """Export closed days of history to the archive, each checked against MongoDB.

    Every table of a day (telemetry, deliveries, alerts, drones, stations) is written to
    <archive>/v1/<table>/date=<day>/part-0.parquet, replacing an earlier export of that day
    (idempotent). A day is closed ten minutes after midnight UTC.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from skyhive.services.archive_export import ArchiveError

    days = _chosen_days(day, first, last)
    records: list[ExportRecord] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with clients_of(ctx) as clients, Progress(*columns) as progress:
        exporter = clients.archive_exporter
        overall = progress.add_task("days", total=len(days))
        for d in days:
            readings = progress.add_task(f"{d} readings", total=None)
            try:
                record = exporter.export_day(d, on_rows=partial(progress.advance, readings))
            except ArchiveError as exc:
                raise click.ClickException(str(exc)) from None
            progress.update(readings, total=record.rows, completed=record.rows)
            progress.advance(overall)
            records.append(record)
    console = Console()
    console.print(_records_table(records))
    for r in records:
        if r.rows == 0:
            console.print(f"{r.day}: no readings that day; its telemetry file is empty (and valid)")
    if not all(r.verified for r in records):
        raise click.ClickException("some days could not be verified (see problems)")


@archive.command("verify")
@click.option("--day", callback=_day, required=True, help="YYYY-MM-DD, UTC.")
@click.pass_context
def archive_verify(ctx: click.Context, day: date) -> None:
    """Check an exported day: its files as recorded, and MongoDB's readings against them."""
    from skyhive.services.archive_export import ArchiveError

    with clients_of(ctx) as clients:
        try:
            record, note = clients.archive_exporter.verify(day)
        except ArchiveError as exc:
            raise click.ClickException(str(exc)) from None
    console = Console()
    console.print(_records_table([record]))
    console.print(note)
    if not record.verified:
        raise click.ClickException(f"{day} is not verified: {'; '.join(record.problems)}")


@archive.command("list")
@click.pass_context
def archive_list(ctx: click.Context) -> None:
    """Every exported day, as the manifest (MongoDB ``archive_exports``) records it."""
    with clients_of(ctx) as clients:
        records = clients.archive_exporter.records()
        root = clients.archive.root
    if not records:
        click.echo(f"nothing archived yet (the archive's folder: {root})")
        return
    Console().print(_records_table(records))
    click.echo(f"{len(records)} day(s) in {root}")


@archive.command("kpis")
@click.option(
    "--kpi",
    "names",
    multiple=True,
    help="Only this KPI (repeatable): station_hours, on_time, delivery_times, outcome_reasons, "
    "drone_utilisation, energy_per_km, alerts_by_type_station.",
)
@format_option
@archive_option
@click.pass_context
def archive_kpis(
    ctx: click.Context, names: tuple[str, ...], fmt: str, archive_dir: Path | None
) -> None:
    """The fleet KPIs over the whole archive, with DuckDB (the SQL jobs/fleet_kpis.py runs on
    Spark: skyhive.domain.kpis)."""
    from skyhive.adapters.archive_sql import QueryRefused, QueryTimeout
    from skyhive.domain.kpis import BY_NAME

    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise click.BadParameter(f"no KPI named {', '.join(unknown)}", param_hint="--kpi")
    try:
        results = archive_sql(ctx, archive_dir).kpis(names)
    except (QueryRefused, QueryTimeout) as exc:
        raise click.ClickException(str(exc)) from None
    for name, result in results.items():
        print_result(result, fmt, title=f"{name}: {BY_NAME[name].title}")
