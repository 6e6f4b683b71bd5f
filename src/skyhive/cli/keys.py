"""`skyhive keys create|list|revoke`: API keys from the command line, for whoever runs the
servers (the same records as ``/api/v1/keys``)."""

from __future__ import annotations

import click

from skyhive.cli.common import clients_of
from skyhive.domain.access import KEY_ROLES, Role, parse_duration


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> object:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def keys() -> None:
    """API keys for people and scripts (roles: viewer, operator, admin, customer)."""


@keys.command("create")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option("--role", required=True, type=click.Choice([r.value for r in KEY_ROLES]))
@click.option("--customer", "customer_id", default=None, help="For a customer key: its customer.")
@click.option("--expires", default=None, callback=_duration, help="Lifetime, e.g. 90d, 12h, 2w.")
@click.pass_context
def keys_create(
    ctx: click.Context, name: str, role: str, customer_id: str | None, expires: object
) -> None:
    """Create a key and print it once: only its hash is kept."""
    from datetime import timedelta

    from skyhive.services.api_keys import KeyRejected, audit_cli, create_key

    with clients_of(ctx) as clients:
        try:
            doc, secret = create_key(
                clients,
                name,
                Role(role),
                customer_id,
                expires if isinstance(expires, timedelta) else None,
            )
        except KeyRejected as exc:
            raise click.ClickException(exc.message) from None
        audit_cli(clients, "keys.create", str(doc["_id"]))
    expiry = doc["expires_at"].isoformat() if doc["expires_at"] else "never"
    click.echo(
        f"key id {doc['_id']} ({role}, expires {expiry}); the key, shown this once:", err=True
    )
    click.echo(secret)


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.pass_context
def keys_list(ctx: click.Context, include_revoked: bool) -> None:
    """List keys (never the keys themselves)."""
    from rich.console import Console
    from rich.table import Table

    with clients_of(ctx) as clients:
        docs = clients.api_keys.find(include_revoked, limit=10_000)
    table = Table("id", "name", "role", "customer", "created", "expires", "last used", "revoked")

    def when(value: object) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "-"

    for d in docs:
        table.add_row(
            d["_id"],
            d["name"],
            d["role"],
            d.get("customer_id") or "-",
            when(d.get("created_at")),
            when(d.get("expires_at")),
            when(d.get("last_used_at")),
            when(d.get("revoked_at")),
        )
    Console().print(table)


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key; every API process refuses it from the next request on."""
    from skyhive.services.api_keys import audit_cli
    from skyhive.services.deliveries import to_millisecond

    with clients_of(ctx) as clients:
        doc = clients.api_keys.revoke(key_id, to_millisecond(clients.clock.now()))
        if doc is not None:
            audit_cli(clients, "keys.revoke", key_id)
    if doc is None:
        raise click.ClickException(f"no key {key_id!r}")
    click.echo(f"revoked {key_id} ({doc['name']}, {doc['role']})")
