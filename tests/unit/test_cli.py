"""The `skyhive` command's table of commands and its generated options. Pure: no servers."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from dataclasses import fields

import click

import skyhive.cli
from skyhive.cli import COMMANDS, cli
from skyhive.cli.simulation import simulate
from skyhive.simulator.faults import FaultRates


def test_every_command_is_in_the_table_under_its_own_name() -> None:
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
    defined = set()
    for found in pkgutil.iter_modules(skyhive.cli.__path__):
        module = importlib.import_module(f"skyhive.cli.{found.name}")
        commands = [c for c in vars(module).values() if isinstance(c, click.Command)]
        nested = {
            id(s) for g in commands if isinstance(g, click.Group) for s in g.commands.values()
        }
        defined |= {c.name for c in commands if id(c) not in nested}
    assert defined == set(COMMANDS)


def test_a_role_starts_without_loading_the_other_commands() -> None:
    code = (
        "import sys, click; from skyhive.cli import cli; "
        "cli.get_command(click.Context(cli), 'gateway'); "
        "print(sorted(m for m in sys.modules if m.startswith(('skyhive.simulator', "
        "'skyhive.cli.bench', 'skyhive.cli.simulation'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_fault_rate_is_a_simulate_option() -> None:
    rates = {f.name: round(0.01 * (i + 1), 2) for i, f in enumerate(fields(FaultRates))}
    args = [a for name, p in rates.items() for a in (f"--{name.replace('_', '-')}-rate", str(p))]
    given = simulate.make_context("simulate", args).params
    assert FaultRates(**{name: given[f"{name}_rate"] for name in rates}) == FaultRates(**rates)
    defaults = simulate.make_context("simulate", []).params
    assert FaultRates(**{name: defaults[f"{name}_rate"] for name in rates}) == FaultRates()


def test_several_processors_on_one_redis_partition_is_refused_before_anything_starts() -> None:
    from click.testing import CliRunner

    args = ["bench", "ingest", "--processors", "2", "--partitions", "1", "--no-baseline"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "several processors on Redis need --partitions > 1" in result.output
