"""What the command modules share: the settings the root group loaded, and the servers'
clients for one command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from skyhive.settings import Settings

if TYPE_CHECKING:
    from skyhive.wiring import Clients


def settings_of(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@contextmanager
def clients_of(ctx: click.Context) -> Iterator[Clients]:
    """The servers' clients for one command, closed when it is done."""
    from skyhive.wiring import Clients  # connects lazily; kept off the CLI's import path

    clients = Clients(settings_of(ctx))
    try:
        yield clients
    finally:
        clients.close()
