"""`skyhive drones`: the fleet registry and each drone's MQTT credentials."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from skyhive.cli.common import clients_of

F = TypeVar("F", bound=Callable[..., Any])
# Remote ID (F3411's UASID fields, then the operator): option → field.
REMOTE_ID_OPTIONS = (
    ("--serial-number", "serial_number", "ANSI/CTA-2063-A serial number, e.g. 1ABC5A1B2C."),
    ("--registration-id", "registration_id", "CAA registration: <nationality mark>.<id>."),
    ("--utm-id", "utm_id", "A UTM-provided session UUID."),
    ("--session-id", "specific_session_id", "Specific session id, hexadecimal."),
    ("--operator-id", "operator_id", "The operator's CAA registration."),
)


MAVLINK_OPTIONS = (
    ("--mavlink-sysid", "mavlink_sysid", int, "The autopilot's MAVLink system id (1-255)."),
    ("--mavlink-link", "mavlink_link", str, 'The listen endpoint it comes in on (default "any").'),
    (
        "--mavlink-signing-key",
        "mavlink_signing_key",
        str,
        "MAVLink 2 signing key, 64 hex digits (or SKYHIVE_MAVLINK_SIGNING_KEY).",
    ),
)


def mavlink_options(func: F) -> F:
    """The MAVLink options, on a command that takes them as ``**mavlink``."""
    for flag, field, kind, text in reversed(MAVLINK_OPTIONS):
        envvar = "SKYHIVE_MAVLINK_SIGNING_KEY" if field == "mavlink_signing_key" else None
        func = click.option(flag, field, type=kind, default=None, envvar=envvar, help=text)(func)
    return func


def remote_id_options(func: F) -> F:
    """The Remote ID options, on a command that takes them as ``**remote_id``."""
    for flag, field, text in reversed(REMOTE_ID_OPTIONS):
        func = click.option(flag, field, default=None, help=text)(func)
    return func


def remote_id_fields(values: dict[str, str | None]) -> dict[str, Any]:
    """``uas_id`` and ``operator_id`` from the options given (none given: nothing)."""
    out: dict[str, Any] = {}
    uas = {k: v for k, v in values.items() if v is not None and k != "operator_id"}
    if uas:
        out["uas_id"] = uas
    if values.get("operator_id") is not None:
        out["operator_id"] = values["operator_id"]
    return out


@click.group()
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
@remote_id_options
@mavlink_options
@click.pass_context
def drones_register(
    ctx: click.Context,
    /,
    drone_id: str,
    home_station: str,
    model: str,
    max_payload_kg: float,
    battery_wh: float,
    cruise_speed_mps: float,
    consumption_wh_per_km: float,
    no_credentials: bool,
    mavlink_sysid: int | None,
    mavlink_link: str | None,
    mavlink_signing_key: str | None,
    **remote_id: str | None,
) -> None:
    """Register a drone so the dispatcher may assign it deliveries, and issue its MQTT
    password (printed once: the drone signs in with its id and this password). The Remote
    ID options record its UAS ID and operator ID (see `skyhive drones remote-id`)."""
    from pydantic import ValidationError

    from skyhive.adapters.fleet_repo import DuplicateDrone, DuplicateMavlinkId
    from skyhive.adapters.stations_repo import get_station
    from skyhive.domain.fleet import DroneSpec
    from skyhive.domain.telemetry import format_validation_error
    from skyhive.services.device_credentials import issue_drone_password

    try:
        spec = DroneSpec(
            drone_id=drone_id,
            model=model,
            home_station=home_station,
            max_payload_kg=max_payload_kg,
            battery_capacity_wh=battery_wh,
            cruise_speed_mps=cruise_speed_mps,
            consumption_wh_per_km=consumption_wh_per_km,
            mavlink_sysid=mavlink_sysid,
            mavlink_link=mavlink_link,
            mavlink_signing_key=mavlink_signing_key,
            **remote_id_fields(remote_id),
        )
    except ValidationError as exc:
        raise click.ClickException(format_validation_error(exc)) from None
    with clients_of(ctx) as clients:
        try:
            if get_station(clients.db, home_station) is None:
                raise click.ClickException(f"unknown home station {home_station!r}")
            clients.fleet.register(spec)
            password = None if no_credentials else issue_drone_password(clients, drone_id)
        except DuplicateDrone:
            raise click.ClickException(f"drone {drone_id!r} is already registered") from None
        except DuplicateMavlinkId as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"registered {drone_id} ({model}, home {home_station})")
    if password is not None:
        _echo_drone_login(drone_id, password)


def _echo_drone_login(drone_id: str, password: str) -> None:
    click.echo(f"MQTT username: {drone_id}")
    click.echo("MQTT password (shown this once; store it on the drone now):")
    click.echo(password)


@drones.command("remote-id")
@click.argument("drone_id")
@remote_id_options
@click.pass_context
def drones_remote_id(ctx: click.Context, /, drone_id: str, **remote_id: str | None) -> None:
    """Show a drone's Remote ID (UAS ID, operator ID), or set it with the options: any UAS
    ID option replaces the registered UAS ID whole. With SKYHIVE_REMOTE_ID__REQUIRED=true
    the dispatcher assigns only drones that have both."""
    from pydantic import ValidationError

    from skyhive.domain.fleet import DroneSpecPatch
    from skyhive.domain.telemetry import format_validation_error

    try:
        patch = DroneSpecPatch(**remote_id_fields(remote_id))
    except ValidationError as exc:
        raise click.ClickException(format_validation_error(exc)) from None
    with clients_of(ctx) as clients:
        spec = clients.fleet.update(drone_id, patch)
    if spec is None:
        raise click.ClickException(f"drone {drone_id!r} is not registered")
    uas = spec.uas_id.model_dump(exclude_none=True) if spec.uas_id else {}
    click.echo(f"{drone_id}: uas_id {uas or 'none'}, operator_id {spec.operator_id or 'none'}")


@drones.command("mavlink")
@click.argument("drone_id")
@mavlink_options
@click.pass_context
def drones_mavlink(ctx: click.Context, /, drone_id: str, **mavlink: Any) -> None:
    """Show a drone's MAVLink identity (system id, link, whether it has a signing key), or
    set it with the options. The `mavlink` role (SKYHIVE_MAVLINK__LISTEN) maps frames from
    that system id on that link to this drone; with a signing key, only frames signed with
    it are believed."""
    from pydantic import ValidationError

    from skyhive.adapters.fleet_repo import DuplicateMavlinkId
    from skyhive.domain.fleet import DroneSpecPatch
    from skyhive.domain.telemetry import format_validation_error

    try:
        patch = DroneSpecPatch(**{k: v for k, v in mavlink.items() if v is not None})
    except ValidationError as exc:
        raise click.ClickException(format_validation_error(exc)) from None
    with clients_of(ctx) as clients:
        try:
            spec = clients.fleet.update(drone_id, patch)
        except DuplicateMavlinkId as exc:
            raise click.ClickException(str(exc)) from None
    if spec is None:
        raise click.ClickException(f"drone {drone_id!r} is not registered")
    key = "a signing key" if spec.mavlink_signing_key else "no signing key"
    click.echo(
        f"{drone_id}: MAVLink system id {spec.mavlink_sysid or 'none'} on link "
        f"{spec.mavlink_link or 'any'}, {key}"
    )


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

    if rotate and revoke:
        raise click.ClickException("--rotate or --revoke, not both")
    with clients_of(ctx) as clients:
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
                changed = datetime.fromtimestamp(cred.changed_ms / 1000, UTC)
                when = changed.isoformat(timespec="seconds")
                click.echo(f"{drone_id}: MQTT password issued {when} by {cred.source}")
                return
        except UnknownDrone:
            raise click.ClickException(f"drone {drone_id!r} is not registered") from None
    _echo_drone_login(drone_id, password)


@drones.command("list")
@click.option("--status", type=click.Choice(["active", "maintenance", "retired"]), default=None)
@click.pass_context
def drones_list(ctx: click.Context, status: str | None) -> None:
    """List registered drones."""
    from rich.console import Console
    from rich.table import Table

    with clients_of(ctx) as clients:
        specs = clients.fleet.list(status=status)
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


@drones.command("migrate-history")
@click.pass_context
def drones_migrate_history(ctx: click.Context) -> None:
    """Fold telemetry history kept one document per reading (before buckets) into buckets;
    safe to run again or to interrupt."""
    with clients_of(ctx) as clients:
        moved = clients.telemetry.migrate_readings()
    click.echo(f"{moved} readings moved into buckets")
