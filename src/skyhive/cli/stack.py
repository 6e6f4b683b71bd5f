"""`skyhive up` and `skyhive demo`: the whole stack in one supervised command."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click

from skyhive.cli.history_sim import (
    HISTORY_SEED,
    Duration,
    describe,
    rollups_behind,
    write_history,
)
from skyhive.settings import Settings

if TYPE_CHECKING:
    from skyhive.wiring import Clients

# The demo's history: a few drones, coarse readings, so a week is written in seconds.
DEMO_HISTORY_DRONES = 12
DEMO_READING_INTERVAL_S = 60.0
DEMO_DOCKED_INTERVAL_S = 900.0


def _up_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option(
        "--mqtt-port",
        type=click.IntRange(1, 65535),
        default=None,
        help="Embedded MQTT port [1883].",
    )(f)
    f = click.option(
        "--api-port", type=click.IntRange(1, 65535), default=None, help="API/dashboard port [8080]."
    )(f)
    f = click.option("--host", default=None, help="Address to bind [127.0.0.1].")(f)
    f = click.option(
        "--broker",
        type=click.Choice(["auto", "mosquitto", "amqtt"]),
        default=None,
        help="The embedded MQTT broker: Mosquitto when installed, else amqtt (auto); "
        "mosquitto (installed if need be) or amqtt. [SKYHIVE_BROKER, auto]",
    )(f)
    f = click.option(
        "--insecure-devices",
        is_flag=True,
        default=None,
        help="Let MQTT clients without a password publish and read anything (a quick test "
        "with any MQTT client; never in production). [SKYHIVE_INSECURE_DEVICES]",
    )(f)
    f = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where the embedded servers keep their data [./.skyhive].",
    )(f)
    return f


def _run_up(
    settings: Settings,
    extra_roles: dict[str, list[str]] | None = None,
    seed: Callable[[Clients], str | None] | None = None,
) -> None:
    from skyhive.embedded import EmbeddedError
    from skyhive.supervisor import run_up

    try:
        sys.exit(run_up(settings, extra_roles, seed))
    except EmbeddedError as exc:
        raise click.ClickException(str(exc)) from None


def _up_settings(**opts: object) -> Settings:
    """Environment and options only: `up` starts servers, it never joins a running stack."""
    overrides = {k: v for k, v in opts.items() if v is not None}
    return Settings().model_copy(update=overrides)


@click.command()
@_up_options
def up(**opts: object) -> None:
    """Start the embedded stack and every SkyHive process; Ctrl-C stops it all."""
    _run_up(_up_settings(**opts))


@click.command()
@_up_options
@click.option("--drones", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(0.01, 50),
    default=1.0,
    show_default=True,
    help="Messages/s per drone.",
)
@click.option(
    "--history",
    type=Duration(),
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="Past activity written on first start (when the stores hold none yet), so "
    "analytics, forecasts and the dashboard have something to show.",
)
@click.option("--no-history", is_flag=True, help="Start without simulated history.")
def demo(drones: int, rate: float, history: timedelta, no_history: bool, **opts: object) -> None:
    """`up` plus the fleet simulator, for a first look."""

    sim = [
        sys.executable,
        "-m",
        "skyhive",
        "simulate",
        "--drones",
        str(drones),
        "--rate",
        str(rate),
        "--emergency-rate",
        "0.0003",
        "--battery-drain-rate",
        "0.0003",
        "--duplicate-rate",
        "0.002",
        "--out-of-order-rate",
        "0.002",
        "--malformed-rate",
        "0.001",
        # A trickle of every alert-raising fault, so the alerting can be seen at work. A GPS
        # jump or a battery drop grounds its drone until a person clears the alert: rare
        # enough (about two an hour in a fleet of 50) that the demo fleet keeps flying.
        "--gps-jump-rate",
        "0.000005",
        "--overspeed-rate",
        "0.0002",
        "--altitude-rate",
        "0.0002",
        "--battery-drop-rate",
        "0.000005",
        "--offline-rate",
        "0.0001",
    ]
    orders = [sys.executable, "-m", "skyhive", "simulate-orders", "--every", "20"]
    _run_up(
        _up_settings(**opts),
        extra_roles={"simulator": sim, "orders": orders},
        seed=partial(_seed_demo, history=None if no_history else history, drones=drones),
    )


def _seed_demo(clients: Clients, history: timedelta | None, drones: int) -> str:
    """The demo's customers, an operator key for the dashboard (and the order generator),
    and on first start simulated history, all said in the banner: the demo is for a first
    look, on one's own machine."""
    from skyhive.services.api_keys import DEMO_KEY_FILE, ensure_demo_operator_key
    from skyhive.services.demo_customers import seed_demo_customers

    seed_demo_customers(clients.customers, clients.clock)
    key = ensure_demo_operator_key(clients)
    path = (clients.settings.data_dir / DEMO_KEY_FILE).resolve()
    return (
        f"  Dashboard key   : {key}\n"
        f"                    (a demo operator key, kept in {path}; sign in with it at /login)\n"
        f"  History         : {_seed_history(clients, history, drones)}\n"
    )


def _seed_history(clients: Clients, history: timedelta | None, drones: int) -> str:
    """A week (``history``) of the first drones' activity, written only when the stores hold
    none yet. Coarser than `simulate --history`'s defaults (fewer drones, a reading a minute
    in flight) so that start-up stays within half a minute; the rollups are rebuilt behind, in this
    process, while the stack starts."""
    if history is None:
        return "none (--no-history)"
    seeder = clients.history_seeder
    fleet = seeder.drones(min(drones, DEMO_HISTORY_DRONES))
    if seeder.has_history(fleet):
        return "the stores hold activity already; no simulated history added"
    click.echo(f"First start: writing {describe(history)} of simulated history ...", err=True)
    summary = write_history(
        clients,
        history,
        fleet,
        HISTORY_SEED,
        DEMO_READING_INTERVAL_S,
        DEMO_DOCKED_INTERVAL_S,
        rollups=rollups_behind(clients.settings),
    )
    return (
        f"{summary.orders} orders and {summary.readings} readings of {len(fleet)} drones, "
        f"{summary.since:%Y-%m-%d %H:%M} to {summary.until:%Y-%m-%d %H:%M} UTC (simulated;\n"
        "                    its rollups are being rebuilt behind)"
    )
