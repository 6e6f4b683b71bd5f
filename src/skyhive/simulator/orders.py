"""Simulated customers placing delivery orders through the REST API, as a shop's system would:
the demo's source of deliveries, so the dispatcher, the tracker, billing and the dashboard
have real work to show.

Each order is for a random existing customer, from a random BART station to a point 0.5-4 km
away in a random direction, with a small package. Orders go through ``POST
/api/v1/deliveries`` like any client's: validated, priced and dispatched by the platform.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

from skyhive.adapters.http_json import request_json
from skyhive.domain.stations import bart_stations
from skyhive.simulator.history_demand import random_order

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0


@dataclass
class OrderStats:
    placed: int = 0
    refused: int = 0  # a 4xx: the platform said why (logged)
    failed: int = 0  # the API did not answer


def _customers(api: str, key: str) -> list[str]:
    url = f"{api}/api/v1/customers?limit=1000"
    status, body = request_json("GET", url, timeout=TIMEOUT_S, key=key)
    if status != 200 or not isinstance(body, dict):
        raise OSError(f"GET /api/v1/customers answered {status}")
    return [str(c["id"]) for c in body.get("items", [])]


def run_orders(
    api: str, every_s: float, stop: threading.Event, key: str, seed: int | None = None
) -> OrderStats:
    """Place an order every ``every_s`` seconds until ``stop``, as the holder of ``key`` (an
    operator key); waits for the API and for at least one customer first."""
    rng = random.Random(seed)
    stations = bart_stations()
    stats = OrderStats()
    customers: list[str] = []
    while not stop.is_set() and not customers:
        try:
            customers = _customers(api, key)
            if not customers:
                log.info("no customers yet; create some (POST /api/v1/customers)")
        except OSError as exc:
            log.info("waiting for the API at %s: %s", api, exc)
        if not customers:
            stop.wait(2.0)
    while not stop.wait(every_s):
        order = random_order(rng.choice(customers), stations, rng)
        try:
            status, body = request_json(
                "POST", f"{api}/api/v1/deliveries", order, timeout=TIMEOUT_S, key=key
            )
        except OSError as exc:
            stats.failed += 1
            log.warning("order not placed, the API did not answer: %s", exc)
            continue
        if status in (200, 201):
            stats.placed += 1
            log.info(
                "order %s for %s from %s (%s)",
                body.get("id"),
                order["customer_id"],
                order["pickup_station"],
                body.get("price_estimate"),
            )
        else:
            stats.refused += 1
            log.warning("order refused (%s): %s", status, (body or {}).get("error"))
    return stats
