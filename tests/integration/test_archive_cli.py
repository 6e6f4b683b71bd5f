"""`skyhive archive` and `skyhive query` on the embedded servers: a known day (archive_data)
exported by hand, listed, verified, queried and summed up in KPIs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from archive_data import DAY, READINGS_OF_DAY, make_day
from click.testing import CliRunner

from cli_env import cli_env
from skyhive.cli import cli
from skyhive.wiring import Clients


def test_export_list_verify_query_and_kpis_from_the_command_line(clients: Clients) -> None:
    make_day(clients)
    runner, env = CliRunner(), cli_env(clients.settings)

    exported = runner.invoke(cli, ["archive", "export", "--day", DAY.isoformat()], env=env)
    assert exported.exit_code == 0, exported.output
    assert DAY.isoformat() in exported.output and str(READINGS_OF_DAY) in exported.output
    assert clients.archive.path("telemetry", DAY).is_file()

    quiet = runner.invoke(
        cli, ["archive", "export", "--from", "2026-11-20", "--to", "2026-11-21"], env=env
    )
    assert quiet.exit_code == 0, quiet.output
    assert "2026-11-21: no readings that day; its telemetry file is empty" in quiet.output

    listed = runner.invoke(cli, ["archive", "list"], env=env)
    assert listed.exit_code == 0 and "3 day(s)" in listed.output
    assert [r.day.isoformat() for r in clients.archive_exporter.records()] == [
        "2026-11-20",
        "2026-11-21",
        "2026-11-23",
    ]

    verified = runner.invoke(cli, ["archive", "verify", "--day", DAY.isoformat()], env=env)
    assert verified.exit_code == 0, verified.output
    assert f"MongoDB holds {READINGS_OF_DAY} readings of {DAY}" in verified.output
    never = runner.invoke(cli, ["archive", "verify", "--day", "2026-11-22"], env=env)
    assert never.exit_code == 1 and "has not been exported" in never.output

    sql = "SELECT drone_id, count(*) AS n FROM telemetry GROUP BY drone_id ORDER BY drone_id"
    csv = runner.invoke(cli, ["query", sql, "--format", "csv"], env=env)
    assert csv.exit_code == 0, csv.output
    assert csv.output.splitlines() == ["drone_id,n", "d-1,121", "d-2,20", "d-3,3"]
    table = runner.invoke(cli, ["query", "SELECT 1 AS one"], env=env)
    assert table.exit_code == 0 and "one" in table.output and "1 row(s)" in table.output
    refused = runner.invoke(cli, ["query", "DROP VIEW telemetry"], env=env)
    assert refused.exit_code == 1 and "only SELECT queries" in refused.output

    kpis = runner.invoke(cli, ["archive", "kpis", "--kpi", "on_time", "--format", "json"], env=env)
    assert kpis.exit_code == 0, kpis.output
    [answer] = [json.loads(line) for line in kpis.output.splitlines() if line.startswith("{")]
    assert answer["columns"][:4] == ["station", "delivered", "with_eta", "on_time"]
    assert answer["rows"][0][:4] == ["*", 3, 3, 2]
    unknown = runner.invoke(cli, ["archive", "kpis", "--kpi", "nope"], env=env)
    assert unknown.exit_code == 2 and "no KPI named nope" in unknown.output


def test_days_not_closed_and_bad_days_are_refused(clients: Clients) -> None:
    runner, env = CliRunner(), cli_env(clients.settings)
    today = datetime.now(UTC).date()
    for args, says in (
        (["--day", today.isoformat()], "is not closed yet"),
        (["--from", (today - timedelta(days=2)).isoformat(), "--to", today.isoformat()], "is not closed yet"),
        (["--day", "23/11/2026"], "YYYY-MM-DD"),
        (["--day", DAY.isoformat(), "--from", DAY.isoformat()], "not both"),
        (["--to", DAY.isoformat()], "--to needs --from"),
        (["--from", DAY.isoformat(), "--to", "2026-11-01"], "before it starts"),
    ):  # fmt: skip
        result = runner.invoke(cli, ["archive", "export", *args], env=env)
        assert result.exit_code == 2 and says in result.output, (args, result.output)
    assert not clients.settings.archive_path().exists()
