"""The role commands: one process of one role against the configured servers (what
`skyhive up` starts, and what runs at scale on other hosts)."""

from __future__ import annotations

from typing import cast

import click

from skyhive.cli.common import settings_of
from skyhive.workers.signals import stop_on_signals


@click.command()
@click.option(
    "--retire",
    "retire_id",
    metavar="CLIENT_ID",
    default=None,
    help="Take the gateway with this MQTT client id out of service for good instead: "
    "unsubscribe its session, write what the broker queued for it to the bus, then end "
    "the session (a stopped gateway's share of a shared subscription waits in its session).",
)
@click.pass_context
def gateway(ctx: click.Context, retire_id: str | None) -> None:
    """Run one MQTT gateway against the configured servers."""
    from skyhive.workers.gateway import retire_gateway, run_gateway

    settings = settings_of(ctx)
    if retire_id is None:
        run_gateway(settings, stop_on_signals())
        return
    try:
        n = retire_gateway(settings, retire_id, stop_on_signals())
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"gateway {retire_id} not retired: {exc}") from None
    click.echo(
        f"gateway {retire_id} retired: {n} queued messages written to the bus, session ended"
    )


@click.command()
@click.option(
    "--lane",
    type=click.Choice(["all", "routine", "urgent"]),
    default="all",
    show_default=True,
    help="routine: all telemetry and the offline watch; urgent: emergencies only, judged "
    "ahead of any backlog; all: both, in one process.",
)
@click.pass_context
def processor(ctx: click.Context, lane: str) -> None:
    """Run one stream processor against the configured servers."""
    from skyhive.bootstrap import bootstrap
    from skyhive.wiring import Clients
    from skyhive.workers.processor import Lane, run_processor

    settings = settings_of(ctx)
    stop = stop_on_signals()
    clients = Clients(settings)
    try:
        bootstrap(clients)
    except Exception as exc:
        raise click.ClickException(f"cannot reach MongoDB/Redis: {exc}") from None
    finally:
        clients.close()
    run_processor(settings, stop, cast(Lane, lane))


@click.command()
@click.pass_context
def archiver(ctx: click.Context) -> None:
    """Run one archiver: telemetry history into MongoDB (consumer group; run several)."""
    from skyhive.workers.archiver import run_archiver

    run_archiver(settings_of(ctx), stop_on_signals())


@click.command()
@click.pass_context
def dispatcher(ctx: click.Context) -> None:
    """Run one dispatcher (several may run: drone claims are atomic)."""
    from skyhive.workers.dispatcher import run_dispatcher

    run_dispatcher(settings_of(ctx), stop_on_signals())


@click.command()
@click.pass_context
def tracker(ctx: click.Context) -> None:
    """Run the delivery tracker: drone events, ETAs, silent drones (several may run)."""
    from skyhive.workers.tracker import run_tracker

    run_tracker(settings_of(ctx), stop_on_signals())


@click.command()
@click.pass_context
def notifier(ctx: click.Context) -> None:
    """Run the alert notifier: alert changes and reminders to the notification channels."""
    from skyhive.workers.notifier import run_notifier

    run_notifier(settings_of(ctx), stop_on_signals())


@click.command()
@click.option("--once", is_flag=True, help="Retrain every station now, say how it went, exit.")
@click.pass_context
def forecaster(ctx: click.Context, once: bool) -> None:
    """Run the demand forecaster: each station's orders per hour, retrained every hour."""
    from skyhive.workers.forecaster import retrain_once, run_forecaster

    settings = settings_of(ctx)
    if not once:
        run_forecaster(settings, stop_on_signals())
        return
    run = retrain_once(settings)
    click.echo(
        f"{run.stations} stations: {run.trained} forecast, {run.skipped} without enough "
        f"history, {run.failed} failed ({run.fits} fits in {run.seconds:g} s)"
    )
    if run.failed:
        ctx.exit(1)


@click.command()
@click.option("--list", "list_only", is_flag=True, help="List the installed models and exit.")
@click.pass_context
def models(ctx: click.Context, list_only: bool) -> None:
    """Run the stream models (battery health, anomalies, plug-ins) on the telemetry stream."""
    from skyhive.models.plugins import installed
    from skyhive.workers.models import run_models

    settings = settings_of(ctx)
    found = installed()
    if list_only:
        enabled = set(settings.models.enabled)
        for name, ep in sorted(found.items()):
            click.echo(f"{name}\t{ep.value}\t{'enabled' if name in enabled else 'disabled'}")
        return
    missing = [name for name in settings.models.enabled if name not in found]
    if missing:
        raise click.ClickException(
            f"SKYHIVE_MODELS__ENABLED names models that are not installed: {missing} "
            f"(installed: {sorted(found)})"
        )
    run_models(settings, stop_on_signals())


@click.command()
@click.pass_context
def api(ctx: click.Context) -> None:
    """Serve the REST API and dashboard."""
    from skyhive.api.server import run_api

    run_api(settings_of(ctx))
