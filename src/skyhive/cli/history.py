"""`skyhive history`: the rollups by hand and what history holds. The archivers keep the
rollups as readings arrive (``services/rollups.py``, ``services/station_rollups.py``); `rollup`
sums up any window again (after an import, or over a window the archivers missed)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from skyhive.cli.common import clients_of, settings_of

_WHEN = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
# What `status` shows: (what, collection, its time field).
_LEVELS = (
    ("raw readings", "telemetry", "start"),
    ("minute rollups", "rollups_minute", "start"),
    ("hour rollups", "rollups_hour", "start"),
)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@click.group()
def history() -> None:
    """History: rebuild rollups, see what is kept."""


@history.command()
@click.option("--since", type=click.DateTime(_WHEN), required=True, help="UTC.")
@click.option("--until", type=click.DateTime(_WHEN), default=None, help="UTC [now].")
@click.pass_context
def rollup(ctx: click.Context, since: datetime, until: datetime | None) -> None:
    """Sum up the drones' minutes and hours and the stations' hours of [--since, --until)
    again, from what is stored."""
    columns = (TextColumn("drone-minutes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with clients_of(ctx) as clients:
            start, end = _utc(since), _utc(until) if until else clients.clock.now()
            if start >= end:
                raise click.BadParameter("--since must be before --until", param_hint="--since")
            with Progress(*columns, transient=True) as bar:
                task = bar.add_task("rollups", total=None)
                minutes = clients.rollups.rebuild(
                    start, end, lambda d, n: bar.update(task, completed=d, total=n)
                )
            hours = clients.station_rollups.rebuild(start, end)
    except PyMongoError as exc:
        raise click.ClickException(f"MongoDB: {exc}") from None
    click.echo(f"rebuilt {minutes} drone-minutes and {hours} station-hours")


@history.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """What history holds at each level, its oldest and newest, and how long it is kept."""
    h = settings_of(ctx).history
    kept = {
        "raw readings": f"{h.raw_days} days" if h.expire else "for ever",
        "minute rollups": f"{h.minute_days} days" if h.expire else "for ever",
        "hour rollups": "for ever",
    }
    table = Table("level", "documents", "oldest", "newest", "kept")
    try:
        with clients_of(ctx) as clients:
            for what, name, field in _LEVELS:
                c = clients.db[name]
                ends = [
                    next(iter(c.find({}, {field: 1}).sort(field, order).limit(1)), None)
                    for order in (1, -1)
                ]
                oldest, newest = (str(d[field])[:16] if d else "-" for d in ends)
                table.add_row(what, str(c.estimated_document_count()), oldest, newest, kept[what])
    except PyMongoError as exc:
        raise click.ClickException(f"MongoDB: {exc}") from None
    Console().print(table)
