"""The `skyhive` command."""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, cast

import click

from skyhive.keys_cli import keys
from skyhive.settings import Settings, load_settings

if TYPE_CHECKING:
    from skyhive.wiring import Clients


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("amqtt", "pymongo", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# After SIGINT/SIGTERM a process has this long to stop cleanly; then every thread's stack is
# written to stderr (its log) and it exits, so a stuck shutdown is both bounded and explained.
SHUTDOWN_GRACE_S = 45.0


def _stop_on_signals(grace_s: float = SHUTDOWN_GRACE_S) -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            faulthandler.dump_traceback_later(grace_s, exit=True)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """SkyHive: real-time operations for a drone delivery fleet."""
    _setup_logging(verbose)
    try:
        ctx.obj = load_settings()
    except Exception as exc:  # a bad SKYHIVE_* variable: say which, don't dump a traceback
        raise click.ClickException(f"invalid configuration: {exc}") from None


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


def _up_settings(ctx: click.Context, **opts: object) -> Settings:
    """Environment and options only: `up` starts servers, it never joins a running stack."""
    overrides = {k: v for k, v in opts.items() if v is not None}
    return Settings().model_copy(update=overrides)


@cli.command()
@_up_options
@click.pass_context
def up(ctx: click.Context, /, **opts: object) -> None:
    """Start the embedded stack and every SkyHive process; Ctrl-C stops it all."""
    _run_up(_up_settings(ctx, **opts))


@cli.command()
@_up_options
@click.option("--drones", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(0.01, 50),
    default=1.0,
    show_default=True,
    help="Messages/s per drone.",
)
@click.pass_context
def demo(ctx: click.Context, /, drones: int, rate: float, **opts: object) -> None:
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
        # A trickle of every alert-raising fault, so the alerting can be seen at work.
        "--gps-jump-rate",
        "0.0002",
        "--overspeed-rate",
        "0.0002",
        "--altitude-rate",
        "0.0002",
        "--battery-drop-rate",
        "0.0001",
        "--offline-rate",
        "0.0001",
    ]
    orders = [sys.executable, "-m", "skyhive", "simulate-orders", "--every", "20"]
    _run_up(
        _up_settings(ctx, **opts),
        extra_roles={"simulator": sim, "orders": orders},
        seed=_seed_demo,
    )


def _seed_demo(clients: Clients) -> str:
    """The demo's customers, and an operator key for the dashboard (and the order
    generator), printed in the banner: the demo is for a first look, on one's own machine."""
    from skyhive.services.api_keys import DEMO_KEY_FILE, ensure_demo_operator_key
    from skyhive.services.demo_customers import seed_demo_customers

    seed_demo_customers(clients)
    key = ensure_demo_operator_key(clients)
    path = (clients.settings.data_dir / DEMO_KEY_FILE).resolve()
    return (
        f"  Dashboard key   : {key}\n"
        f"                    (a demo operator key, kept in {path}; sign in with it at /login)\n"
    )


@cli.command()
@click.pass_context
def gateway(ctx: click.Context) -> None:
    """Run one MQTT gateway against the configured servers."""
    from skyhive.services.gateway import run_gateway

    run_gateway(_settings(ctx), _stop_on_signals())


@cli.command()
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
    from skyhive.services.processor import Lane, run_processor
    from skyhive.wiring import Clients

    settings = _settings(ctx)
    stop = _stop_on_signals()
    clients = Clients(settings)
    try:
        bootstrap(clients)
    except Exception as exc:
        raise click.ClickException(f"cannot reach MongoDB/Redis: {exc}") from None
    finally:
        clients.close()
    run_processor(settings, stop, cast(Lane, lane))


@cli.command()
@click.pass_context
def archiver(ctx: click.Context) -> None:
    """Run one archiver: telemetry history into MongoDB (consumer group; run several)."""
    from skyhive.services.archiver import run_archiver

    run_archiver(_settings(ctx), _stop_on_signals())


@cli.command()
@click.pass_context
def dispatcher(ctx: click.Context) -> None:
    """Run one dispatcher (several may run: drone claims are atomic)."""
    from skyhive.services.dispatcher import run_dispatcher

    run_dispatcher(_settings(ctx), _stop_on_signals())


@cli.command()
@click.pass_context
def tracker(ctx: click.Context) -> None:
    """Run the delivery tracker: drone events, ETAs, silent drones (several may run)."""
    from skyhive.services.tracker import run_tracker

    run_tracker(_settings(ctx), _stop_on_signals())


@cli.command()
@click.pass_context
def notifier(ctx: click.Context) -> None:
    """Run the alert notifier: alert changes and reminders to the notification channels."""
    from skyhive.services.notifier import run_notifier

    run_notifier(_settings(ctx), _stop_on_signals())


@cli.group()
def billing() -> None:
    """Invoices: the monthly billing run and the overdue check."""


@billing.command("run")
@click.option("--period", required=True, help="The month to bill, YYYY-MM (e.g. 2026-11).")
@click.pass_context
def billing_run(ctx: click.Context, period: str) -> None:
    """Bill a closed month: one invoice per customer for its delivered deliveries.

    Idempotent: running a period again creates nothing new and bills no delivery twice.
    """
    from rich.console import Console
    from rich.table import Table

    from skyhive.bootstrap import bootstrap
    from skyhive.domain.billing import BillingError, Period
    from skyhive.services.billing import BillingService
    from skyhive.wiring import Clients

    clients = Clients(_settings(ctx))
    try:
        bootstrap(clients)
        service = BillingService(clients)
        result = service.run(Period.parse(period))
        overdue = service.mark_overdue()
    except BillingError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        clients.close()
    table = Table("period", "customers", "invoices created", "deliveries billed", "repaired")
    table.add_row(
        result.period,
        str(result.customers),
        str(result.invoices_created),
        str(result.deliveries_billed),
        str(result.repaired),
    )
    Console().print(table)
    click.echo(f"{overdue} invoice(s) newly overdue")


@billing.command("schedule")
@click.pass_context
def billing_schedule(ctx: click.Context) -> None:
    """Run billing periodically (what `skyhive up` starts): bill each month once it has
    closed, mark overdue invoices."""
    from skyhive.services.billing import run_billing

    run_billing(_settings(ctx), _stop_on_signals())


@cli.group()
def drones() -> None:
    """The fleet registry."""


@drones.command("register")
@click.argument("drone_id")
@click.option("--home-station", required=True, help="Station code, e.g. 12TH.")
@click.option("--model", default="skyhive-x4", show_default=True)
@click.option("--max-payload-kg", type=float, default=2.5, show_default=True)
@click.option("--battery-wh", type=float, default=500.0, show_default=True)
@click.option("--cruise-speed-mps", type=float, default=15.0, show_default=True)
@click.option("--consumption-wh-per-km", type=float, default=8.0, show_default=True)
@click.option(
    "--no-credentials", is_flag=True, help="Don't issue an MQTT password now (do it later)."
)
@click.pass_context
def drones_register(
    ctx: click.Context,
    drone_id: str,
    home_station: str,
    model: str,
    max_payload_kg: float,
    battery_wh: float,
    cruise_speed_mps: float,
    consumption_wh_per_km: float,
    no_credentials: bool,
) -> None:
    """Register a drone so the dispatcher may assign it deliveries, and issue its MQTT
    password (printed once: the drone signs in with its id and this password)."""
    from pydantic import ValidationError

    from skyhive.adapters.fleet_repo import DuplicateDrone
    from skyhive.adapters.stations_repo import get_station
    from skyhive.domain.fleet import DroneSpec
    from skyhive.domain.telemetry import format_validation_error
    from skyhive.services.device_credentials import issue_drone_password
    from skyhive.wiring import Clients

    try:
        spec = DroneSpec(
            drone_id=drone_id,
            model=model,
            home_station=home_station,
            max_payload_kg=max_payload_kg,
            battery_capacity_wh=battery_wh,
            cruise_speed_mps=cruise_speed_mps,
            consumption_wh_per_km=consumption_wh_per_km,
        )
    except ValidationError as exc:
        raise click.ClickException(format_validation_error(exc)) from None
    clients = Clients(_settings(ctx))
    try:
        if get_station(clients.db, home_station) is None:
            raise click.ClickException(f"unknown home station {home_station!r}")
        clients.fleet.register(spec)
        password = None if no_credentials else issue_drone_password(clients, drone_id)
    except DuplicateDrone:
        raise click.ClickException(f"drone {drone_id!r} is already registered") from None
    finally:
        clients.close()
    click.echo(f"registered {drone_id} ({model}, home {home_station})")
    if password is not None:
        _echo_drone_login(drone_id, password)


def _echo_drone_login(drone_id: str, password: str) -> None:
    click.echo(f"MQTT username: {drone_id}")
    click.echo("MQTT password (shown this once; store it on the drone now):")
    click.echo(password)


@drones.command("credentials")
@click.argument("drone_id")
@click.option("--rotate", is_flag=True, help="Issue a new password (the old one stops working).")
@click.option("--revoke", is_flag=True, help="Withdraw the password (the drone is shut out).")
@click.pass_context
def drones_credentials(ctx: click.Context, drone_id: str, rotate: bool, revoke: bool) -> None:
    """A drone's MQTT credentials: show their state, --rotate (prints the new password once)
    or --revoke. Open connections lose their rights within SKYHIVE_CREDENTIALS_REFRESH_S."""
    from datetime import UTC, datetime

    from skyhive.services.device_credentials import (
        UnknownDrone,
        drone_credential,
        issue_drone_password,
        revoke_drone_password,
    )
    from skyhive.wiring import Clients

    if rotate and revoke:
        raise click.ClickException("--rotate or --revoke, not both")
    clients = Clients(_settings(ctx))
    try:
        if rotate:
            password = issue_drone_password(clients, drone_id)
        elif revoke:
            if not revoke_drone_password(clients, drone_id):
                raise click.ClickException(f"drone {drone_id!r} has no MQTT password to revoke")
            click.echo(f"revoked the MQTT password of {drone_id}")
            return
        else:
            cred = drone_credential(clients, drone_id)
            if cred is None or not cred.active:
                state = "revoked" if cred is not None else "none"
                click.echo(f"{drone_id}: no MQTT password ({state}); issue one with --rotate")
                return
            when = datetime.fromtimestamp(cred.changed_ms / 1000, UTC).isoformat(timespec="seconds")
            click.echo(f"{drone_id}: MQTT password issued {when} by {cred.source}")
            return
    except UnknownDrone:
        raise click.ClickException(f"drone {drone_id!r} is not registered") from None
    finally:
        clients.close()
    _echo_drone_login(drone_id, password)


@drones.command("list")
@click.option("--status", type=click.Choice(["active", "maintenance", "retired"]), default=None)
@click.pass_context
def drones_list(ctx: click.Context, status: str | None) -> None:
    """List registered drones."""
    from rich.console import Console
    from rich.table import Table

    from skyhive.wiring import Clients

    clients = Clients(_settings(ctx))
    try:
        specs = clients.fleet.list(status=status)
    finally:
        clients.close()
    table = Table("drone", "model", "home", "payload kg", "battery Wh", "m/s", "Wh/km", "status")
    for s in specs:
        table.add_row(
            s.drone_id,
            s.model,
            s.home_station,
            f"{s.max_payload_kg:g}",
            f"{s.battery_capacity_wh:g}",
            f"{s.cruise_speed_mps:g}",
            f"{s.consumption_wh_per_km:g}",
            s.status,
        )
    Console().print(table)
    click.echo(f"{len(specs)} drones")


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


@cli.command("simulate-orders")
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

    settings = _settings(ctx)
    api = (api_url or f"http://{settings.host}:{settings.api_port}").rstrip("/")
    stats = run_orders(api, every, _stop_on_signals(), _client_key(settings), seed)
    click.echo(f"orders placed={stats.placed} refused={stats.refused} failed={stats.failed}")


@cli.command()
@click.pass_context
def api(ctx: click.Context) -> None:
    """Serve the REST API and dashboard."""
    from skyhive.api.server import run_api

    run_api(_settings(ctx))


@cli.command()
@click.option("--drones", type=click.IntRange(1, 100_000), default=50, show_default=True)
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
@click.option("--emergency-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--battery-drain-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option(
    "--gps-jump-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="One reading's position off by 2-5 km.",
)
@click.option(
    "--overspeed-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="On the way: 5-12 s at 31-40 m/s (a gust or a runaway).",
)
@click.option(
    "--altitude-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="On the way: up to 125-150 m, 8-20 s above the 120 m ceiling.",
)
@click.option(
    "--battery-drop-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="A cell failure: the battery 20-30 points lower at once, for good.",
)
@click.option(
    "--offline-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="A radio outage: the drone publishes nothing for --offline-s seconds.",
)
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
    type=click.Choice(
        [
            "emergency",
            "battery_drain",
            "gps_jump",
            "overspeed",
            "altitude",
            "battery_drop",
            "offline",
        ]
    ),
    multiple=True,
    help="Every drone has this fault once, right after its first take-off (repeatable).",
)
@click.option("--duplicate-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--out-of-order-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--malformed-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
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
@click.pass_context
def simulate(
    ctx: click.Context,
    drones: int,
    rate: float,
    duration: float | None,
    seed: int | None,
    id_prefix: str,
    emergency_rate: float,
    battery_drain_rate: float,
    gps_jump_rate: float,
    overspeed_rate: float,
    altitude_rate: float,
    battery_drop_rate: float,
    offline_rate: float,
    offline_s: float,
    fault_once: tuple[str, ...],
    duplicate_rate: float,
    out_of_order_rate: float,
    malformed_rate: float,
    autonomous_legs: bool,
    time_scale: float,
    no_register: bool,
) -> None:
    """Fly a simulated fleet between BART stations, publishing telemetry over MQTT.

    The drones obey dispatch commands and are registered in the fleet registry on start.
    The --*-rate options inject faults (per-message probabilities); --fault-once makes every
    drone have a fault right after it takes off, for a demonstration or a test."""
    from skyhive.adapters.mqtt_url import parse_mqtt_url
    from skyhive.domain.fleet import DroneSpec
    from skyhive.services.device_credentials import (
        CredentialConflict,
        UnknownDrone,
        simulator_passwords,
    )
    from skyhive.simulator import FaultRates, SimulatorConfig, run_simulator
    from skyhive.simulator.faults import FaultKind
    from skyhive.wiring import Clients

    settings = _settings(ctx)
    host, port = parse_mqtt_url(settings.mqtt_url_or_default())
    faults = FaultRates(
        emergency=emergency_rate,
        battery_drain=battery_drain_rate,
        gps_jump=gps_jump_rate,
        overspeed=overspeed_rate,
        altitude=altitude_rate,
        battery_drop=battery_drop_rate,
        offline=offline_rate,
        duplicate=duplicate_rate,
        out_of_order=out_of_order_rate,
        malformed=malformed_rate,
    )
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
    secure = not settings.insecure_devices
    if secure and no_register:
        raise click.ClickException(
            "--no-register needs insecure devices (SKYHIVE_INSECURE_DEVICES=true): "
            "a drone has MQTT credentials only once it is registered"
        )
    clients = Clients(settings)

    def register(specs: list[DroneSpec]) -> None:
        added = clients.fleet.ensure_registered(specs)
        click.echo(f"fleet registry: {added} drones added, {len(specs) - added} known", err=True)

    def logins(specs: list[DroneSpec]) -> dict[str, str]:
        """Registered first (credentials are for registered drones only), then each drone's
        password, kept in the data dir (mode 600) so a restart does not rotate them."""
        register(specs)
        path = settings.data_dir / "simulator" / f"{id_prefix}-credentials.json"
        return simulator_passwords(clients, [s.drone_id for s in specs], path)

    how = (
        "one connection per drone, each with its own credentials"
        if secure
        else ("one anonymous connection (insecure devices)")
    )
    click.echo(
        f"simulating {drones} drones at {rate:g} Hz → mqtt://{host}:{port} ({how})", err=True
    )

    def progress(stats: dict[str, object]) -> None:
        click.echo("simulator: " + ", ".join(f"{k}={v}" for k, v in stats.items()), err=True)

    try:
        stats = run_simulator(
            config,
            host,
            port,
            stop_event=_stop_on_signals(grace_s=20.0),  # 10 s of it for in-flight acks
            progress=progress,
            register=None if no_register or secure else register,
            logins=logins if secure else None,
        )
    except (UnknownDrone, CredentialConflict, ConnectionError) as exc:
        raise click.ClickException(str(exc) or type(exc).__name__) from None
    finally:
        clients.close()
    click.echo(f"done: {stats}", err=True)


@cli.group()
def broker() -> None:
    """The MQTT broker's access rules, for a broker SkyHive does not embed."""


@broker.command("mosquitto-config")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for passwd, acl and skyhive.conf.",
)
@click.option(
    "--insecure-devices",
    is_flag=True,
    default=None,
    help="Also let anonymous clients in, to every topic (tests only).",
)
@click.pass_context
def broker_mosquitto_config(
    ctx: click.Context, out_dir: Path, insecure_devices: bool | None
) -> None:
    """Mosquitto's password file and ACL file (its own formats) from the credential store:
    each drone its own topics, each service what it needs. Include skyhive.conf in
    mosquitto.conf; after registering or rotating, run this again and `kill -HUP` Mosquitto."""
    from skyhive.services.device_credentials import write_mosquitto_config
    from skyhive.wiring import Clients

    settings = _settings(ctx)
    insecure = settings.insecure_devices if insecure_devices is None else insecure_devices
    clients = Clients(settings)
    try:
        files = write_mosquitto_config(clients, out_dir, insecure)
    finally:
        clients.close()
    click.echo(f"{files.users} users → {files.password_file}, {files.acl_file} (mode 600)")
    click.echo(f"add to mosquitto.conf: the lines of {files.conf}")
    if insecure:
        click.echo("WARNING: insecure devices: anonymous clients may publish and read anything")


@cli.group()
def bench() -> None:
    """Benchmarks of the real pipeline on this machine."""


_json_option = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
_broker_option = click.option(
    "--broker", type=click.Choice(["amqtt", "mosquitto"]), default="amqtt", show_default=True
)


def _progress(message: str) -> None:
    click.echo(message, err=True)


def _echo_json(report: object, **extra: object) -> None:
    """A benchmark's report (a dataclass) as one line of JSON, with ``extra`` fields."""
    import dataclasses

    import orjson

    assert dataclasses.is_dataclass(report) and not isinstance(report, type)
    click.echo(orjson.dumps({**dataclasses.asdict(report), **extra}).decode())


@bench.command("ingest")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=1500,
    show_default=True,
    help="Target msg/s (0 = flat out).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=30,
    show_default=True,
    help="Seconds of load.",
)
@click.option("--drones", type=click.IntRange(1, 100_000), default=500, show_default=True)
@_broker_option
@_json_option
def bench_ingest(rate: float, duration: float, drones: int, broker: str, as_json: bool) -> None:
    """Push telemetry over MQTT through the whole pipeline; report rate, latency and loss."""
    from skyhive.bench.ingest import run_ingest_bench

    report = run_ingest_bench(rate, duration, drones, broker, progress=_progress)
    if as_json:
        _echo_json(report, zero_loss=report.zero_loss)
    else:
        lat = report.latency_ms
        click.echo(
            f"broker={report.broker} target={report.target_rate:g} msg/s drones={report.drones} "
            f"duration={report.duration_s:g}s\n"
            f"published={report.published} stored={report.stored} unique={report.unique_in_history} "
            f"zero_loss={report.zero_loss}\n"
            f"sustained={report.sustained_rate:g} msg/s (drain after load {report.drain_s:g}s)\n"
            f"publish→live-state latency ms: p50={lat.get('p50')} p99={lat.get('p99')} "
            f"max={lat.get('max')} (samples={report.samples})"
        )
    if not report.zero_loss:
        sys.exit(1)


def _pp(stats: dict[str, float]) -> str:
    return f"{stats.get('p50')}/{stats.get('p99')} ms"


@bench.command("alerts")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=2000,
    show_default=True,
    help="Background telemetry, messages/s.",
)
@click.option("--duration", type=click.FloatRange(min=5), default=20, show_default=True)
@click.option("--drones", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option(
    "--triggers",
    type=click.FloatRange(0.1, 100),
    default=5,
    show_default=True,
    help="Emergencies per second, each from a new drone.",
)
@_broker_option
@_json_option
def bench_alerts(
    rate: float, duration: float, drones: int, triggers: float, broker: str, as_json: bool
) -> None:
    """Alert latency: MQTT publish of an emergency → webhook received, under load."""
    from skyhive.bench.alerts import run_alert_bench

    report = run_alert_bench(rate, duration, drones, triggers, broker, progress=_progress)
    if as_json:
        _echo_json(report)
    else:
        lat = report.latency_ms
        click.echo(
            f"broker={report.broker} background={report.rate:g}/s offered, "
            f"{report.telemetry_per_s:g}/s ingested; triggered={report.triggered} "
            f"notified={report.notified}\n"
            f"publish → webhook (ms): p50={lat.get('p50')} p99={lat.get('p99')} "
            f"max={lat.get('max')}\n"
            f"  publish → telemetry bus p50/p99: {_pp(report.to_bus_ms)}; "
            f"→ alerts stream: {_pp(report.to_alert_ms)}; → webhook: {_pp(report.to_webhook_ms)}"
        )
    if report.notified < report.triggered:
        sys.exit(1)


@bench.command("dispatch")
@click.option("--drones", type=click.IntRange(10, 20_000), default=1000, show_default=True)
@click.option(
    "--rate", type=click.FloatRange(min=1), default=100, show_default=True, help="Orders/s."
)
@click.option("--duration", type=click.FloatRange(min=1), default=8, show_default=True)
@click.option(
    "--telemetry-hz",
    type=click.FloatRange(0.05, 10),
    default=1.0,
    show_default=True,
    help="Telemetry rate per simulated drone.",
)
@_broker_option
@_json_option
def bench_dispatch(
    drones: int, rate: float, duration: float, telemetry_hz: float, broker: str, as_json: bool
) -> None:
    """Dispatch latency (order accepted → command published) with a live simulated fleet."""
    from skyhive.bench.dispatch import run_dispatch_bench

    report = run_dispatch_bench(
        drones,
        rate,
        duration,
        progress=_progress,
        telemetry_hz=telemetry_hz,
        broker=broker,
    )
    if as_json:
        _echo_json(report)
    else:
        lat, inner = report.latency_ms, report.dispatcher_latency_ms
        click.echo(
            f"drones={report.drones} orders={report.orders} at {report.rate:g}/s "
            f"rejected={report.rejected} commanded={report.commanded} "
            f"double_booked={report.double_booked} "
            f"telemetry_ingested={report.telemetry_per_s:g}/s\n"
            f"order accepted → command received (ms): p50={lat.get('p50')} p99={lat.get('p99')} "
            f"max={lat.get('max')}\n"
            f"order accepted → assigned, in the dispatcher (ms): p50={inner.get('p50')} "
            f"p99={inner.get('p99')} max={inner.get('max')}\n"
            f"POST /api/v1/deliveries round trip (ms): p50={report.api_post_ms.get('p50')} "
            f"p99={report.api_post_ms.get('p99')}"
        )
    if report.double_booked or report.commanded < report.orders:
        sys.exit(1)


@bench.command("dashboard")
@click.option("--drones", type=click.IntRange(1, 20_000), default=1000, show_default=True)
@click.option(
    "--hz", type=click.FloatRange(0.1, 10), default=1.0, show_default=True, help="Per drone."
)
@click.option("--duration", type=click.FloatRange(min=5), default=30, show_default=True)
@click.option(
    "--screenshot", type=click.Path(dir_okay=False, path_type=Path), help="Save the page as PNG."
)
@_json_option
def bench_dashboard(
    drones: int, hz: float, duration: float, screenshot: Path | None, as_json: bool
) -> None:
    """The dashboard in headless Chromium with a simulated fleet: frame time and update lag."""
    from skyhive.bench.dashboard import run_dashboard_bench

    report = run_dashboard_bench(drones, hz, duration, progress=_progress, screenshot=screenshot)
    if as_json:
        _echo_json(report)
    else:
        frame, lag = report.frame_ms, report.lag_ms
        click.echo(
            f"drones={report.drones} at {report.hz:g} Hz for {report.duration_s:g}s: "
            f"{report.drones_on_map} on the map; {report.telemetry_per_s:g} readings/s ingested, "
            f"{report.updates_per_s:g} drone updates/s drawn in {report.redraws_per_s:g} "
            "redraws/s\n"
            f"frame time (ms): p50={frame.get('p50')} p99={frame.get('p99')} "
            f"max={frame.get('max')} (over 50 ms: {report.slow_frames_pct:g}%)\n"
            f"update lag, telemetry ts → drawn (ms): p50={lag.get('p50')} p99={lag.get('p99')} "
            f"max={lag.get('max')}\n"
            f"  of which applied by the processor → drawn (ms): {_pp(report.stream_lag_ms)}; "
            f"one redraw of the drones (ms): {_pp(report.draw_ms)}"
        )


@bench.command("api")
@click.option(
    "--rate", type=click.FloatRange(min=1), default=500, show_default=True, help="Requests/s."
)
@click.option("--duration", type=click.FloatRange(min=1), default=10, show_default=True)
@_json_option
def bench_api(rate: float, duration: float, as_json: bool) -> None:
    """API read latency under waitress: customers and invoices, cached and uncached."""
    from skyhive.bench.api import run_api_bench

    report = run_api_bench(rate, duration, progress=_progress)
    if as_json:
        _echo_json(report)
        return
    click.echo(
        f"{rate:g} requests/s, {duration:g} s per case (latency from the scheduled send); "
        f"load average at the end {report.load_average[0]:.1f}"
    )
    for c in report.cases:
        lat = c.latency_ms
        click.echo(
            f"  {c.name:<20} p50={lat.get('p50')} p99={lat.get('p99')} max={lat.get('max')} ms"
            f"  ({c.requests} requests, {c.achieved_rps:g}/s, hit={c.hits} miss={c.misses} "
            f"errors={c.errors}; in the server p50 <= {c.server_ms.get('p50_le')} "
            f"p99 <= {c.server_ms.get('p99_le')} ms)"
        )


@bench.command("durability")
@click.option(
    "--what",
    type=click.Choice(["fsync", "broker-crash", "mosquitto-save", "all"]),
    default="all",
    show_default=True,
    help="Which measurement.",
)
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Readings queued at the broker crash; Mosquitto's saves with 0, 4N and 20N queued.",
)
@click.option(
    "--fsync-seconds",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    help="Seconds per fsync row.",
)
@_json_option
def bench_durability(what: str, n: int, fsync_seconds: float, as_json: bool) -> None:
    """Bus writes with appendfsync everysec vs always; what a broker kill -9 loses; the CPU
    of Mosquitto's saves. Exits 1 if Mosquitto lost a backlog it had saved."""
    from skyhive.bench.durability import WHAT, format_report, run_durability_bench

    chosen = WHAT if what == "all" else (what,)
    report = run_durability_bench(chosen, n, fsync_seconds, progress=_progress)
    if as_json:
        _echo_json(report, mosquitto_kept_saved_backlog=report.mosquitto_kept_saved_backlog)
    else:
        click.echo(format_report(report))
    if not report.mosquitto_kept_saved_backlog:
        sys.exit(1)


cli.add_command(keys)


def main() -> None:
    cli(prog_name="skyhive")
