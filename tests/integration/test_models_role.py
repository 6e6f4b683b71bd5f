"""The ``models`` role against the real embedded Redis and MongoDB: simulated readings on the
telemetry stream, the battery-health model in its own consumer group, its ``maintenance_due``
alert through the alerting engine (in MongoDB, the API, ``/metrics``), its entries
acknowledged, a replay that raises nothing new, and a restart that keeps the baseline."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from auth_helpers import api_client
from polling import wait_for
from skyhive.adapters.stream_lag import read_lag
from skyhive.bench.models import Flights
from skyhive.bootstrap import bootstrap
from skyhive.domain.telemetry import Telemetry
from skyhive.models.battery_health import BatteryHealth
from skyhive.models.config import ModelsConfig
from skyhive.services.ingest import encode_for_bus
from skyhive.services.model_runner import ModelRunner, group_of
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings
from skyhive.wiring import Clients

HOUR = 3600.0


@pytest.fixture
def clients(make_settings: Callable[..., Settings]) -> Iterator[Clients]:
    # Saved only when the test says (on close): a save in between would move the third
    # process's starting point.
    models = ModelsConfig(enabled=("battery_health",), save_every_s=3600)
    c = Clients(make_settings(models=models))
    bootstrap(c)
    yield c
    c.close()


def runner_for(clients: Clients, consumer: str) -> ModelRunner:
    """A `models` process's runner of the battery-health model (a new one: a new process)."""
    return ModelRunner(
        clients.settings,
        BatteryHealth(clients.settings.models.options_for("battery_health")),
        bus=clients.bus,
        engine=clients.alert_engine,
        specs=SpecCache(clients.fleet, clients.clock),
        states=clients.model_states,
        stats=clients.model_stats,
        clock=clients.clock,
        consumer=consumer,
    )


def publish(clients: Clients, readings: list[Telemetry], *extra: bytes) -> None:
    items = [(t.drone_id, encode_for_bus(t)) for t in readings] + [("x", e) for e in extra]
    for i in range(0, len(items), 1000):
        clients.bus.publish(clients.settings.telemetry_stream, items[i : i + 1000])


def drain(runner: ModelRunner) -> None:
    runner.setup()
    while runner.poll():
        pass


def unacked(clients: Clients, group: str) -> int | None:
    """What ``group`` has not acknowledged of the telemetry stream (None: no such group)."""
    stream = clients.settings.telemetry_stream
    (lag,) = read_lag(clients.redis_bytes, [stream])
    return next((g.unacked for g in lag.groups if g.group == group), None)


def test_maintenance_due_is_raised_once_kept_across_a_restart_and_not_repeated_by_replays(
    clients: Clients,
) -> None:
    flights = Flights.of(2, seed=5, prefix="mdrone")
    aging, steady = flights.drones
    clients.fleet.ensure_registered([d.spec for d in flights.drones])
    group = group_of("battery_health")

    # A first process learns both drones' baselines, and saves them on its way out.
    first = runner_for(clients, "models-1")
    baseline_flights = flights.fly(1.5 * HOUR)
    publish(clients, baseline_flights, b"not json")
    drain(first)
    first.close()
    assert first.totals.observed == len(baseline_flights) and first.totals.invalid == 1
    assert clients.alerts.list(alert_type="maintenance_due") == []
    saved = clients.model_states.load("battery_health", [aging.drone_id])[aging.drone_id]
    assert saved.state is not None
    assert saved.state["baseline"] == pytest.approx(8.0, rel=0.02)
    assert saved.seen == (baseline_flights[-2].ts_ms, baseline_flights[-2].seq)

    # A new process goes on from the saved baselines while one drone's battery ages: the
    # aged flight alone would make a baseline of its own and raise nothing.
    aging.battery.pct_per_km *= 1.4
    second = runner_for(clients, "models-2")
    aged_flights = flights.fly(1.5 * HOUR)
    publish(clients, aged_flights)
    drain(second)
    assert second.totals.observed == len(aged_flights)
    assert unacked(clients, group) == 0

    (alert,) = clients.alerts.list(alert_type="maintenance_due")
    assert (alert.drone_id, alert.severity, alert.state) == (aging.drone_id, "warning", "open")
    assert alert.details is not None and alert.details["drift_share"] > 0.25
    assert alert.count == second.totals.findings > 1  # one alert, counted at each segment
    active = clients.active_alerts.get(aging.drone_id, "maintenance_due")
    assert active is not None and active.alert_id == alert.id

    # Seen like any alert: listed by type, acknowledged by an operator.
    api = api_client(clients, "operator")
    listed = api.get("/api/v1/alerts", query_string={"type": "maintenance_due"}).get_json()
    assert [a["id"] for a in listed["items"]] == [alert.id]
    assert "above this drone's baseline" in listed["items"][0]["details"]["message"]
    acked = api.post(f"/api/v1/alerts/{alert.id}/ack", json={"note": "battery ordered"})
    assert acked.status_code == 200 and acked.get_json()["state"] == "acknowledged"

    # The same readings again (a gateway's retry): seen before, nothing new.
    publish(clients, aged_flights)
    drain(second)
    assert second.totals.seen_before == len(aged_flights)
    again = clients.alerts.get(alert.id)
    assert again is not None and again.count == alert.count

    # A crash after the first process's save: a third process re-learns the aged flight
    # from that save and finds the same drift, folded onto the same (acknowledged) alert.
    third = runner_for(clients, "models-3")
    publish(clients, aged_flights)
    drain(third)
    assert third.totals.observed == len(aged_flights)
    (replayed,) = clients.alerts.list(alert_type="maintenance_due")
    assert replayed.id == alert.id and replayed.state == "acknowledged"
    assert clients.alerts.list(drone_id=steady.drone_id) == []
    assert unacked(clients, group) == 0

    # Counters for /metrics, reported at each save.
    second.save()
    third.save()
    stats = clients.model_stats.read(["battery_health"])["battery_health"]
    assert stats.counts["observed"] == len(baseline_flights) + 2 * len(aged_flights)
    assert stats.counts["invalid"] == 1 and stats.counts["seen_before"] == len(aged_flights)
    assert stats.values["drifting"] == 1.0
    metrics = api.get("/metrics").get_data(as_text=True)
    observed = len(baseline_flights) + 2 * len(aged_flights)
    assert (
        f'skyhive_model_readings_total{{model="battery_health",outcome="observed"}} '
        f"{float(observed)}"
    ) in metrics
    assert 'skyhive_model_value{model="battery_health",name="drifting"} 1.0' in metrics


def test_the_role_runs_each_enabled_model_in_its_own_group_and_saves_on_the_way_out(
    make_settings: Callable[..., Settings],
) -> None:
    from skyhive.workers.models import run_models

    # Both models (the default); not reniced: the role runs in this test's process.
    c = Clients(make_settings(bulk_nice=0))
    try:
        flights = Flights.of(1, seed=5, prefix="role")
        c.fleet.ensure_registered([d.spec for d in flights.drones])
        readings = flights.fly(600)
        publish(c, readings)
        stop = threading.Event()
        role = threading.Thread(target=run_models, args=(c.settings, stop))
        role.start()
        try:
            groups = [group_of("battery_health"), group_of("anomaly")]
            wait_for(lambda: all(unacked(c, g) == 0 for g in groups), what="groups caught up")
        finally:
            stop.set()
            role.join(timeout=30)
        assert not role.is_alive()
        drone = flights.drones[0].drone_id
        last = (readings[-1].ts_ms, readings[-1].seq)
        for model in ("battery_health", "anomaly"):  # saved on the way out
            saved = c.model_states.load(model, [drone])[drone]
            assert saved.seen == last and saved.state is not None, model
        stats = c.model_stats.read(["battery_health", "anomaly"])
        assert {m: s.counts["observed"] for m, s in stats.items()} == {
            "battery_health": len(readings),
            "anomaly": len(readings),
        }
    finally:
        c.close()
