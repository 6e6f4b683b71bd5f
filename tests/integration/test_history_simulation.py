"""Simulated history written into the embedded servers (``services/history_seed.py``): what
MongoDB holds matches the run's summary, a second run over the same window writes nothing
new, the records read back through the API's own readers, and closed months are billed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from api_asserts import body
from click.testing import CliRunner

from auth_helpers import api_client
from cli_env import cli_env
from manual_clock import ManualClock
from skyhive.cli import cli
from skyhive.services.history_seed import HistorySummary, summarise
from skyhive.settings import Settings
from skyhive.wiring import Clients

# Two days across a month's end: October closes (and is billed) inside the window.
NOW = datetime(2026, 11, 2, 5, 30, tzinfo=UTC)
UNTIL = datetime(2026, 11, 2, 5, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=2)


def run(clients: Clients) -> HistorySummary:
    seeder = clients.history_seeder
    return seeder.run(timedelta(days=2), seeder.drones(4), 7, 30.0, 600.0)


def counts(clients: Clients) -> tuple[int, int, int, int]:
    db = clients.db
    return (
        db["deliveries"].count_documents({}),
        db["alerts"].count_documents({}),
        len(clients.telemetry.reading_ids()),
        db["invoices"].count_documents({}),
    )


def minutes(clients: Clients) -> int:
    return clients.db["rollups_minute"].count_documents({})


def test_history_is_stored_as_summarised_once_however_often_it_is_written(
    clients: Clients,
) -> None:
    clients.__dict__["clock"] = ManualClock(NOW)
    seeder = clients.history_seeder
    assert not seeder.has_history(seeder.drones(4))
    first = run(clients)
    assert (first.since, first.until, first.drones, first.drones_registered) == (SINCE, UNTIL, 4, 4)
    assert first.customers_created == 6  # a fresh store: the demo's customers order
    assert first.orders > 100 and first.readings > 2000 and first.refused_readings == 0
    assert first.new_deliveries == first.orders == sum(first.statuses.values())
    assert first.new_alerts == first.alerts
    assert first.invoices > 0 and first.rollups is None
    stored = counts(clients)
    assert stored == (first.orders, first.alerts, first.readings, first.invoices)
    assert {s.drone_id for s in clients.fleet.list()} == {f"drone-000{i}" for i in range(1, 5)}
    assert seeder.has_history(seeder.drones(4))

    billed = {
        d["_id"]: d.get("invoice_id")
        for d in clients.db["deliveries"].find({"status": "delivered"})
    }
    october = [i for i, doc in billed.items() if doc is not None]
    assert october and all(v.startswith("inv-2026-10-") for v in billed.values() if v)

    again = run(clients)
    assert (again.new_deliveries, again.new_alerts, again.invoices) == (0, 0, 0)
    assert (again.orders, again.readings, again.alerts) == (
        first.orders,
        first.readings,
        first.alerts,
    )
    assert counts(clients) == stored
    assert {
        d["_id"]: d.get("invoice_id")
        for d in clients.db["deliveries"].find({"status": "delivered"})
    } == billed  # a second run leaves the billed records as billing left them

    active = [a for a in clients.alerts.list(limit=1000) if a.state in ("open", "acknowledged")]
    for a in active:  # the processor's record of what is active agrees with the store
        mirror = clients.active_alerts.get(a.drone_id, a.type)
        assert mirror is not None and mirror.alert_id == a.id


def test_the_records_read_back_through_the_api(clients: Clients) -> None:
    clients.__dict__["clock"] = ManualClock(NOW)
    summary = run(clients)
    records = clients.deliveries.find(limit=10_000)
    assert len(records) == summary.orders
    assert Counter(d.status for d in records) == summary.statuses

    api = api_client(clients, "viewer")
    listed = body(api.get("/api/v1/deliveries", query_string={"limit": 1000}))["items"]
    assert len(listed) == min(summary.orders, 1000)
    delivered = next(d for d in records if d.status == "delivered")
    one = body(api.get(f"/api/v1/deliveries/{delivered.id}"))
    assert one["status"] == "delivered" and one["drone_id"] == delivered.drone_id
    assert one["price_final"] == one["price_estimate"] == str(delivered.price_estimate)
    assert [s["status"] for s in one["timeline"]][-3:] == ["picked_up", "in_transit", "delivered"]
    assert one["dispatch"]["dispatcher"] == "history-simulator"

    alerts = body(api.get("/api/v1/alerts", query_string={"limit": 1000}))["items"]
    assert len(alerts) == summary.alerts
    since = SINCE.isoformat().replace("+00:00", "Z")
    readings = api.get(
        f"/api/v1/drones/{delivered.drone_id}/telemetry",
        query_string={"since": since, "limit": 50, "level": "raw"},
    )
    assert readings.status_code == 200, readings.data[:300]
    items = body(readings)["items"]
    assert items and all(SINCE.isoformat()[:10] <= i["ts"][:10] for i in items)


def test_the_command_writes_history_and_says_what_it_wrote(clients: Clients) -> None:
    env = cli_env(clients.settings)
    runner = CliRunner()
    done = runner.invoke(cli, ["simulate", "--history", "6h", "--drones", "2"], env=env)
    assert done.exit_code == 0, done.output
    assert "2 drones (2 newly registered)" in done.output and "took" in done.output
    # Not a terminal: progress as lines, not a bar nobody sees.
    assert "writing history: " in done.output and "rebuilding its rollups" in done.output
    orders, alerts, readings, _ = counts(clients)
    assert f"orders {orders}:" in done.output
    assert f"readings {readings} ({readings} kept raw" in done.output
    assert f"summed up as made in 0 drone-minutes; 0 refused), alerts {alerts}" in done.output
    assert f"rollups: rollups {minutes(clients)}, station_rollups" in done.output
    bad = runner.invoke(cli, ["simulate", "--history", "3w"], env=env)
    assert bad.exit_code == 2 and "a duration is a number of days or hours" in bad.output


def test_readings_older_than_retention_are_summed_up_but_not_kept_raw(
    make_settings: Callable[..., Settings],
) -> None:
    """With retention on, the TTL index would remove readings older than ``raw_days`` as soon
    as they are written: they are summed up into rollups from the readings themselves and not
    stored; the rest is stored, then summed up from the store, the same way."""
    clients = Clients(make_settings(history={"raw_days": 2}))
    try:
        clients.__dict__["clock"] = ManualClock(NOW)
        seeder = clients.history_seeder
        summary = seeder.run(
            timedelta(days=3),
            seeder.drones(2),
            7,
            30.0,
            600.0,
            rollups=lambda a, b: summarise(clients.rollups, clients.station_rollups, a, b),
        )
        kept_from = summary.until - timedelta(days=2)
        stored = clients.telemetry.readings(seeder.drones(2)[0].drone_id)
        assert stored and min(r["ts"] for r in stored) >= kept_from
        assert 0 < summary.raw_readings < summary.readings
        assert summary.raw_readings == len(clients.telemetry.reading_ids())
        docs = list(clients.db["rollups_minute"].find({}, {"start": 1, "readings": 1}))
        assert summary.rollups is not None  # the raw readings kept: summed up after
        assert len(docs) == summary.minutes + summary.rollups["rollups"]
        assert summary.minutes > 0
        assert sum(d["readings"] for d in docs) == summary.readings  # every reading, once
        assert min(d["start"] for d in docs).replace(tzinfo=UTC) < kept_from
        hours = clients.db["rollups_hour"].find({}, {"readings": 1})
        assert sum(h["readings"] for h in hours) == summary.readings
    finally:
        clients.close()
