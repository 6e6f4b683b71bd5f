"""The `skyhive` command: the root group, and where each of its commands lives.

A command's module is imported only when that command runs (or help lists it), so a role's
process starts without loading the simulator, the benchmarks or the other commands.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from skyhive.settings import load_settings

# Each command of `skyhive`: its module in this package and its name there.
COMMANDS = {
    "up": ("stack", "up"),
    "demo": ("stack", "demo"),
    "gateway": ("roles", "gateway"),
    "processor": ("roles", "processor"),
    "archiver": ("roles", "archiver"),
    "dispatcher": ("roles", "dispatcher"),
    "tracker": ("roles", "tracker"),
    "notifier": ("roles", "notifier"),
    "forecaster": ("roles", "forecaster"),
    "models": ("roles", "models"),
    "api": ("roles", "api"),
    "billing": ("billing", "billing"),
    "drones": ("fleet", "drones"),
    "history": ("history", "history"),
    "archive": ("archive", "archive"),
    "query": ("query", "query"),
    "broker": ("broker", "broker"),
    "keys": ("keys", "keys"),
    "simulate": ("simulation", "simulate"),
    "simulate-orders": ("simulation", "simulate_orders"),
    "bench": ("bench", "bench"),
    "mavlink": ("mavlink", "mavlink"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, name = where
        command: click.Command = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        return command


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("amqtt", "pymongo", "urllib3", "pymavlink"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(cls=_LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """SkyHive: real-time operations for a drone delivery fleet."""
    _setup_logging(verbose)
    try:
        ctx.obj = load_settings()
    except Exception as exc:  # a bad SKYHIVE_* variable: say which, don't dump a traceback
        raise click.ClickException(f"invalid configuration: {exc}") from None


def main() -> None:
    cli(prog_name="skyhive")
