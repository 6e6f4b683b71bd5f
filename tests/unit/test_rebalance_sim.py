"""The rebalancing simulation (``simulator/rebalance_sim.py``, ``bench/rebalance.py``): every
order is accounted for, the same orders are flown both ways, and with rebalancing on the true
demand fewer orders wait for a drone."""

from __future__ import annotations

from datetime import timedelta

from skyhive.bench.rebalance import MONTH_START, _orders, forecast_for, run_rebalance_bench
from skyhive.domain.rebalance import RebalancePolicy
from skyhive.domain.stations import bart_stations
from skyhive.simulator.rebalance_sim import FleetSim


def test_every_order_is_served_or_cancelled_and_rebalancing_makes_fewer_wait() -> None:
    report = run_rebalance_bench(
        days=2, training_days=7, drones=30, orders_per_day=600, forecast="oracle",
        progress=lambda _: None,
    )  # fmt: skip
    for f in (report.without, report.with_rebalancing):
        assert f["orders"] == f["from_the_pad"] + f["waited"] + f["cancelled"] > 500
    assert report.without["orders"] == report.with_rebalancing["orders"]
    assert report.without["moves"] == 0 < report.with_rebalancing["moves"]
    assert report.with_rebalancing["waited"] < report.without["waited"]
    assert report.with_rebalancing["mean_wait_s"] < report.without["mean_wait_s"]


def test_a_naive_forecast_repeats_last_week_and_no_moves_without_need() -> None:
    stations = list(bart_stations())
    predict = forecast_for("naive", stations, MONTH_START, 1, 7, 600, 1, lambda _: None)
    hour = predict(MONTH_START + timedelta(hours=9))
    assert set(hour) <= {s.code for s in stations} and sum(hour.values()) > 0
    # No demand forecast anywhere: the rebalancer moves nothing.
    orders = _orders(stations, MONTH_START, MONTH_START + timedelta(hours=6), 600, 1)
    sim = FleetSim(stations, 20, RebalancePolicy(), lambda _: {})
    assert sim.run(orders, MONTH_START, MONTH_START + timedelta(hours=6)).moves == 0
