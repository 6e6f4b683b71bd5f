"""`skyhive billing`: the monthly billing run by hand, and the billing role."""

from __future__ import annotations

import click

from skyhive.cli.common import clients_of, settings_of
from skyhive.workers.signals import stop_on_signals


@click.group()
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

    with clients_of(ctx) as clients:
        try:
            bootstrap(clients)
            service = clients.billing
            result = service.run(Period.parse(period))
            overdue = service.mark_overdue()
        except BillingError as exc:
            raise click.ClickException(str(exc)) from None
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
    from skyhive.workers.billing import run_billing

    run_billing(settings_of(ctx), stop_on_signals())
