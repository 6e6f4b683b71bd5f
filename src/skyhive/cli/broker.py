"""`skyhive broker`: access rules for an MQTT broker SkyHive does not embed."""

from __future__ import annotations

from pathlib import Path

import click

from skyhive.cli.common import clients_of, settings_of


@click.group()
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

    settings = settings_of(ctx)
    insecure = settings.insecure_devices if insecure_devices is None else insecure_devices
    with clients_of(ctx) as clients:
        files = write_mosquitto_config(clients, out_dir, insecure)
    click.echo(f"{files.users} users → {files.password_file}, {files.acl_file} (mode 600)")
    click.echo(f"add to mosquitto.conf: the lines of {files.conf}")
    if insecure:
        click.echo("WARNING: insecure devices: anonymous clients may publish and read anything")
