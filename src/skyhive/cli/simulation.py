"""`skyhive simulate` (a drone fleet over MQTT, with injected faults) and `skyhive
simulate-orders` (customers ordering through the API)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import Field, fields
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from skyhive.cli.common import clients_of, settings_of
from skyhive.cli.history_sim import HISTORY_DRONES, HISTORY_SEED, history_options, write_history
from skyhive.settings import Settings
from skyhive.simulator.faults import FaultKind, FaultRates
from skyhive.workers.signals import stop_on_signals

if TYPE_CHECKING:
    from skyhive.adapters.fleet_repo import FleetRepo
    from skyhive.domain.fleet import DroneSpec
    from skyhive.simulator.mavlink_runner import VehicleId
    from skyhive.simulator.runner import SimulatorConfig

# Drone faults (one per FaultKind) and message faults: `simulate` lists the drone faults' rates
# with the options that shape them (--offline-s, --fault-once), then the message faults'.
_DRONE_FAULTS = [f for f in fields(FaultRates) if f.name in {k.value for k in FaultKind}]
_MESSAGE_FAULTS = [f for f in fields(FaultRates) if f not in _DRONE_FAULTS]

# The help of a fault's --<fault>-rate option, by FaultRates field (a field without one gets
# its option all the same).
_RATE_HELP = {
    "gps_jump": "One reading's position off by 2-5 km.",
    "overspeed": "On the way: 5-12 s at 31-40 m/s (a gust or a runaway).",
    "altitude": "On the way: up to 125-150 m, 8-20 s above the 120 m ceiling.",
    "battery_drop": "A cell failure: the battery 20-30 points lower at once, for good.",
    "offline": "A radio outage: the drone publishes nothing for --offline-s seconds.",
}


def _rate_options(
    rates: list[Field[float]],
) -> Callable[[click.decorators.FC], click.decorators.FC]:
    """A `--<fault>-rate` option (parameter `<fault>_rate`) for each of these FaultRates
    fields, so a new fault rate is a new option."""

    def decorate(f: click.decorators.FC) -> click.decorators.FC:
        for rate in reversed(rates):
            f = click.option(
                f"--{rate.name.replace('_', '-')}-rate",
                type=click.FloatRange(0, 1),
                default=rate.default,
                show_default=True,
                help=_RATE_HELP.get(rate.name),
            )(f)
        return f

    return decorate


@click.command()
@click.option(
    "--drones",
    type=click.IntRange(1, 100_000),
    default=None,
    help=f"How many drones [50; {HISTORY_DRONES} with --history].",
)
@click.option(
    "--rate",
    type=click.FloatRange(0.001, 100),
    default=1.0,
    show_default=True,
    help="Messages/s per drone.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds to run [until Ctrl-C].",
)
@click.option("--seed", type=int, default=None, help="Random seed, for a repeatable fleet.")
@click.option("--id-prefix", default="drone", show_default=True)
@_rate_options(_DRONE_FAULTS)
@click.option(
    "--offline-s",
    type=click.FloatRange(min=0.1, max=86_400),
    default=30.0,
    show_default=True,
    help="How long a radio outage lasts (wall-clock seconds, whatever --time-scale).",
)
@click.option(
    "--fault-once",
    "fault_once",
    type=click.Choice([k.value for k in FaultKind]),
    multiple=True,
    help="Every drone has this fault once, right after its first take-off (repeatable).",
)
@_rate_options(_MESSAGE_FAULTS)
@click.option(
    "--autonomous-legs/--no-autonomous-legs",
    default=True,
    show_default=True,
    help="Fly repositioning legs on their own between commands, or stay docked until told.",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(0.01, 1000),
    default=1.0,
    show_default=True,
    help="Simulated seconds per real second (flights end sooner; timestamps stay real).",
)
@click.option("--no-register", is_flag=True, help="Don't add the drones to the fleet registry.")
@click.option(
    "--protocol",
    type=click.Choice(["mqtt", "mavlink"]),
    default="mqtt",
    show_default=True,
    help="Telemetry v1 JSON over MQTT, or MAVLink over UDP (each drone a PX4 autopilot).",
)
@click.option(
    "--mavlink-to",
    default="udp:127.0.0.1:14550",
    show_default=True,
    help="With --protocol mavlink: where frames go (the gateway's endpoint).",
)
@click.option("--mavlink-version", type=click.Choice(["1", "2"]), default="2", show_default=True)
@click.option(
    "--mavlink-signing-key",
    metavar="HEX",
    default=None,
    help="Sign every drone's frames with this 32-byte key (64 hex digits) instead of the "
    "registry's keys.",
)
@click.option(
    "--tlog",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="With --protocol mavlink: append every frame sent to this .tlog.",
)
@history_options
@click.pass_context
def simulate(
    ctx: click.Context,
    /,
    drones: int | None,
    rate: float,
    duration: float | None,
    seed: int | None,
    id_prefix: str,
    offline_s: float,
    fault_once: tuple[str, ...],
    autonomous_legs: bool,
    time_scale: float,
    no_register: bool,
    protocol: str,
    mavlink_to: str,
    mavlink_version: str,
    mavlink_signing_key: str | None,
    tlog: Path | None,
    history: timedelta | None,
    reading_interval: float,
    docked_interval: float,
    orders_per_day: float | None,
    **rates: float,
) -> None:
    """Fly a simulated fleet between BART stations, publishing telemetry over MQTT.

    The drones obey dispatch commands and are registered in the fleet registry on start.
    The --*-rate options inject faults (per-message probabilities); --fault-once makes every
    drone have a fault right after it takes off, for a demonstration or a test.
    With --protocol mavlink each drone is a PX4-like MAVLink vehicle over UDP instead.

    With --history, nothing flies live: the past DURATION of activity (orders, flights,
    charging, alerts, the odd failure) is written straight into the stores, and the
    command exits with a summary."""
    if history is not None:
        with clients_of(ctx) as clients:
            seeder = clients.history_seeder
            fleet = seeder.drones(drones or HISTORY_DRONES)
            write_history(
                clients,
                history,
                fleet,
                seed if seed is not None else HISTORY_SEED,
                reading_interval,
                docked_interval,
                orders_per_day,
            )
        return
    drones = drones or 50
    from skyhive.adapters.mqtt_url import parse_mqtt_url
    from skyhive.services.device_credentials import (
        CredentialConflict,
        UnknownDrone,
        simulator_passwords,
    )
    from skyhive.simulator import SimulatorConfig, run_simulator

    settings = settings_of(ctx)
    host, port = parse_mqtt_url(settings.mqtt_url_or_default())
    faults = FaultRates(**{f.name: rates[f"{f.name}_rate"] for f in fields(FaultRates)})
    config = SimulatorConfig(
        drones=drones,
        rate_hz=rate,
        duration_s=duration,
        seed=seed,
        id_prefix=id_prefix,
        faults=faults,
        autonomous_legs=autonomous_legs,
        time_scale=time_scale,
        fault_once=tuple(FaultKind(k) for k in fault_once),
        offline_s=offline_s,
    )
    if protocol == "mavlink":
        _simulate_mavlink(
            ctx, config, mavlink_to, int(mavlink_version), mavlink_signing_key, tlog, no_register
        )
        return
    secure = not settings.insecure_devices
    if secure and no_register:
        raise click.ClickException(
            "--no-register needs insecure devices (SKYHIVE_INSECURE_DEVICES=true): "
            "a drone has MQTT credentials only once it is registered"
        )
    how = (
        "one connection per drone, each with its own credentials"
        if secure
        else ("one anonymous connection (insecure devices)")
    )
    with clients_of(ctx) as clients:

        def register(specs: list[DroneSpec]) -> None:
            added = clients.fleet.ensure_registered(specs)
            click.echo(
                f"fleet registry: {added} drones added, {len(specs) - added} known", err=True
            )

        def logins(specs: list[DroneSpec]) -> dict[str, str]:
            """Registered first (credentials are for registered drones only), then each
            drone's password, kept in the data dir (mode 600) so a restart does not rotate
            them."""
            register(specs)
            path = settings.data_dir / "simulator" / f"{id_prefix}-credentials.json"
            return simulator_passwords(clients, [s.drone_id for s in specs], path)

        click.echo(
            f"simulating {drones} drones at {rate:g} Hz → mqtt://{host}:{port} ({how})", err=True
        )

        try:
            stats = run_simulator(
                config,
                host,
                port,
                stop_event=stop_on_signals(grace_s=20.0),  # 10 s of it for in-flight acks
                progress=_progress,
                register=None if no_register or secure else register,
                logins=logins if secure else None,
            )
        except (UnknownDrone, CredentialConflict, ConnectionError) as exc:
            raise click.ClickException(str(exc) or type(exc).__name__) from None
    click.echo(f"done: {stats}", err=True)


def _simulate_mavlink(
    ctx: click.Context,
    config: SimulatorConfig,
    to: str,
    version: int,
    signing_key: str | None,
    tlog: Path | None,
    no_register: bool,
) -> None:
    """The fleet as MAVLink vehicles: system ids and keys from the registry (registering the
    drones first), else the lowest free ids, unsigned; the mapping is printed for the ground
    station."""
    from skyhive.simulator.mavlink_runner import (
        MavlinkLink,
        parse_endpoint,
        run_mavlink_simulator,
        vehicle_ids,
    )

    try:
        key = bytes.fromhex(signing_key) if signing_key is not None else None
        if key is not None and len(key) != 32:
            raise ValueError("the signing key is 32 bytes: 64 hex digits")
        link = MavlinkLink(parse_endpoint(to), version, tlog)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None

    with contextlib.ExitStack() as stack:

        def identify(specs: list[DroneSpec]) -> dict[str, VehicleId]:
            if not no_register:
                fleet = stack.enter_context(clients_of(ctx)).fleet
                fleet.ensure_registered(specs)
                known = fleet.specs([s.drone_id for s in specs])
                specs = [known.get(s.drone_id, s) for s in specs]
            ids = vehicle_ids(specs, key)
            if not no_register:  # the gateway knows a vehicle by its registered system id
                _register_vehicles(fleet, specs, ids, key)
            for drone_id, v in ids.items():
                signed = "signed" if v.signing_key else "unsigned"
                click.echo(f"{drone_id}: MAVLink system {v.sysid} ({signed})", err=True)
            return ids

        click.echo(
            f"simulating {config.drones} drones as MAVLink {version} vehicles → {to}", err=True
        )
        try:
            stats = run_mavlink_simulator(
                config, link, stop_on_signals(grace_s=5.0), _progress, identify
            )
        except (ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"done: {stats}", err=True)


def _register_vehicles(
    fleet: FleetRepo, specs: list[DroneSpec], ids: dict[str, VehicleId], key: bytes | None
) -> None:
    """Write the system ids given to drones that had none (and the fleet-wide signing key)
    to the registry, so the gateway maps their frames instead of dead-lettering them."""
    from skyhive.adapters.fleet_repo import DuplicateMavlinkId
    from skyhive.domain.fleet import DroneSpecPatch

    for s in specs:
        v = ids[s.drone_id]
        patch = DroneSpecPatch(
            mavlink_sysid=None if s.mavlink_sysid == v.sysid else v.sysid,
            mavlink_signing_key=key.hex() if key and key.hex() != s.mavlink_signing_key else None,
        )
        if patch.model_dump(exclude_none=True):
            try:
                fleet.update(s.drone_id, patch)
            except DuplicateMavlinkId as exc:
                raise click.ClickException(f"{s.drone_id}: {exc}") from None


def _progress(stats: dict[str, object]) -> None:
    click.echo("simulator: " + ", ".join(f"{k}={v}" for k, v in stats.items()), err=True)


def _client_key(settings: Settings) -> str:
    """The API key a client command sends: ``SKYHIVE_API_KEY``, else the demo's operator key
    in the data dir (written by `skyhive demo`)."""
    from skyhive.services.api_keys import DEMO_KEY_FILE

    if settings.api_key:
        return settings.api_key.get_secret_value()
    path = settings.data_dir / DEMO_KEY_FILE
    if path.is_file():
        return path.read_text().strip()
    raise click.ClickException(
        "an operator API key is needed: set SKYHIVE_API_KEY (`skyhive keys create --role operator`)"
    )


@click.command("simulate-orders")
@click.option(
    "--every",
    type=click.FloatRange(0.05, 3600),
    default=20.0,
    show_default=True,
    help="Seconds between orders.",
)
@click.option("--api", "api_url", default=None, help="API base URL [the configured host:port].")
@click.option("--seed", type=int, default=None, help="Random seed, for repeatable orders.")
@click.pass_context
def simulate_orders(
    ctx: click.Context, every: float, api_url: str | None, seed: int | None
) -> None:
    """Customers placing delivery orders through the API (random customer, station and
    destination 0.5-4 km away), one every --every seconds, until Ctrl-C."""
    from skyhive.simulator.orders import run_orders

    settings = settings_of(ctx)
    api = (api_url or f"http://{settings.host}:{settings.api_port}").rstrip("/")
    stats = run_orders(api, every, stop_on_signals(), _client_key(settings), seed)
    click.echo(f"orders placed={stats.placed} refused={stats.refused} failed={stats.failed}")
