"""`skyhive mavlink`: the MAVLink gateway role, and replaying telemetry logs into one."""

from __future__ import annotations

from pathlib import Path

import click

from skyhive.cli.common import settings_of
from skyhive.workers.signals import stop_on_signals


@click.group()
def mavlink() -> None:
    """MAVLink autopilots (PX4, ArduPilot) over UDP."""


@mavlink.command("gateway")
@click.pass_context
def mavlink_gateway(ctx: click.Context) -> None:
    """Run the MAVLink gateway on SKYHIVE_MAVLINK__LISTEN (`skyhive up` starts it when set)."""
    from skyhive.workers.mavlink import run_mavlink

    run_mavlink(settings_of(ctx), stop_on_signals())


@mavlink.command("replay")
@click.argument("tlog", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "to", required=True, help="Where the gateway listens: udp:HOST:PORT.")
@click.option(
    "--speed", type=float, default=1.0, show_default=True, help="Times real time; 0: at once."
)
def mavlink_replay(tlog: Path, to: str, speed: float) -> None:
    """Send a .tlog (QGroundControl's or MAVProxy's telemetry log) to a gateway, frame by
    frame, at the pace it was recorded."""
    from skyhive.adapters.mavlink_tlog import BadTlog, replay
    from skyhive.domain.mavlink import parse_endpoint

    try:
        host, port = parse_endpoint(to)
        sent = replay(tlog, host, port, speed)
    except (ValueError, BadTlog) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{sent} frames sent to {host}:{port}")
