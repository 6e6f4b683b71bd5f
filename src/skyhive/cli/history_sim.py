"""Simulated history from the command line: `skyhive simulate --history` and the demo's first
start share the options, the progress bar and the summary (the work:
``services/history_seed.py``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from skyhive.domain.fleet import DroneSpec
    from skyhive.services.history_seed import HistorySummary
    from skyhive.settings import Settings
    from skyhive.wiring import Clients

log = logging.getLogger(__name__)

HISTORY_DRONES = 20
HISTORY_SEED = 1  # fixed, so that running it again in the same hour writes nothing new
READING_INTERVAL_S = 30.0
DOCKED_INTERVAL_S = 600.0
LOG_EVERY_S = 30.0  # progress lines when stderr is not a terminal


class Duration(click.ParamType[timedelta]):
    """``30d``, ``7d``, ``12h``."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        from skyhive.simulator.history import parse_duration

        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def history_options(f: click.decorators.FC) -> click.decorators.FC:
    """--history and what shapes it (the drones are --drones, the seed --seed)."""
    for decorate in reversed(
        [
            click.option(
                "--history",
                type=Duration(),
                default=None,
                metavar="DURATION",
                help="Write this much past activity (30d, 7d, 12h) into the stores instead "
                "of flying live, up to the start of the current hour; then exit.",
            ),
            click.option(
                "--reading-interval",
                type=click.FloatRange(1, 600),
                default=READING_INTERVAL_S,
                show_default=True,
                help="History: seconds between a drone's readings in flight.",
            ),
            click.option(
                "--docked-interval",
                type=click.FloatRange(10, 3600),
                default=DOCKED_INTERVAL_S,
                show_default=True,
                help="History: seconds between a drone's readings on a pad.",
            ),
            click.option(
                "--orders-per-day",
                type=click.FloatRange(0, 1_000_000),
                default=None,
                help="History: a weekday's orders over the network [20 per drone].",
            ),
        ]
    ):
        f = decorate(f)
    return f


def write_history(
    clients: Clients,
    length: timedelta,
    drones: Sequence[DroneSpec],
    seed: int,
    reading_interval_s: float,
    docked_interval_s: float,
    orders_per_day: float | None = None,
    rollups: Callable[[datetime, datetime], dict[str, int] | None] | None = None,
) -> HistorySummary:
    """Write the history with a progress bar (on stderr), then print its summary. The
    rollups of the window are rebuilt here (:func:`summarise`) unless ``rollups`` does it."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from skyhive.services.history_seed import summarise

    console = Console(stderr=True)
    total = length.total_seconds()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[figures]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("writing history", total=total, figures="")
        # Not a terminal (a log, CI): no bar is drawn, a line every LOG_EVERY_S instead.
        next_line = [0.0 if not console.is_terminal else float("inf")]

        def progress(s: HistorySummary) -> None:
            done = (s.reached - s.since).total_seconds() if s.reached else 0.0
            figures = f"{s.orders} orders, {s.readings} readings, {s.alerts} alerts"
            bar.update(task, completed=done, figures=figures)
            if time.monotonic() >= next_line[0]:
                next_line[0] = time.monotonic() + LOG_EVERY_S
                click.echo(f"writing history: {done / total:.0%}, {figures}", err=True)

        def rebuild(since: datetime, until: datetime) -> dict[str, int] | None:
            bar.update(task, description="rebuilding rollups", completed=total)
            if not console.is_terminal:
                click.echo("history written; rebuilding its rollups", err=True)
            return summarise(clients.rollups, clients.station_rollups, since, until)

        summary = clients.history_seeder.run(
            length,
            drones,
            seed,
            reading_interval_s,
            docked_interval_s,
            orders_per_day,
            progress=progress,
            rollups=rollups or rebuild,
        )
    for line in summary.lines():
        click.echo(line, err=True)
    return summary


def rollups_behind(settings: Settings) -> Callable[[datetime, datetime], None]:
    """Rebuild the rollups of a window in a thread of this process, with clients of its own
    (the caller goes on; the demo starts its stack meanwhile)."""

    def start(since: datetime, until: datetime) -> None:
        def run() -> None:
            from skyhive.services.history_seed import summarise
            from skyhive.wiring import Clients

            clients = Clients(settings)
            try:
                done = summarise(clients.rollups, clients.station_rollups, since, until)
                log.info("rollups of the simulated history rebuilt: %s", done)
            except Exception:
                log.exception(
                    "rebuilding the rollups of the simulated history failed; run `skyhive "
                    "history rollup --since %s --until %s`",
                    f"{since:%Y-%m-%dT%H:%M}",
                    f"{until:%Y-%m-%dT%H:%M}",
                )
            finally:
                clients.close()

        threading.Thread(target=run, name="history-rollups", daemon=True).start()

    return start


def describe(length: timedelta) -> str:
    """``7 days``, ``12 hours``."""
    hours = int(length.total_seconds() // 3600)
    if hours % 24 == 0:
        days = hours // 24
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{hours} hour{'s' if hours != 1 else ''}"
