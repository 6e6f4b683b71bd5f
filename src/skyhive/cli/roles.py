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
@click.pass_context
def api(ctx: click.Context) -> None:
    """Serve the REST API and dashboard."""
    from skyhive.api.server import run_api

    run_api(settings_of(ctx))
