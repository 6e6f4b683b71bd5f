"""The demo's order generator against the real API (a real HTTP server) and embedded stores:
it waits for customers, then places valid orders that the platform accepts and prices."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from wsgiref.types import StartResponse, WSGIEnvironment

import pytest
from customer_seed import add_customers
from werkzeug.serving import make_server

from auth_helpers import make_key
from polling import wait_for
from skyhive.api import create_app
from skyhive.bootstrap import bootstrap
from skyhive.domain.geo import haversine_m
from skyhive.domain.stations import bart_stations
from skyhive.simulator.orders import random_order, run_orders
from skyhive.wiring import Clients


@dataclass
class Served:
    url: str
    answered: list[str]  # the paths of the requests the API has answered, in order


@pytest.fixture
def api(clients: Clients) -> Iterator[Served]:
    bootstrap(clients)
    app = create_app(clients.settings, clients)
    answered: list[str] = []

    def recording(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        response = app(environ, start_response)
        answered.append(environ["PATH_INFO"])
        return response

    server = make_server("127.0.0.1", 0, recording, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    yield Served(f"http://127.0.0.1:{server.server_port}", answered)
    server.shutdown()


def test_orders_wait_for_customers_then_are_accepted_and_priced(
    api: Served, clients: Clients
) -> None:
    stop = threading.Event()
    result = []
    key = make_key(clients, "operator")  # as `skyhive demo` runs it, with its operator key
    runner = threading.Thread(
        target=lambda: result.append(run_orders(api.url, 0.05, stop, key, seed=3))
    )
    runner.start()
    wait_for(lambda: "/api/v1/customers" in api.answered, "the runner asked for customers")
    assert clients.db.deliveries.count_documents({}) == 0  # no customer yet: nothing ordered
    add_customers(clients, "shop-a", "shop-b")
    wait_for(lambda: clients.db.deliveries.count_documents({}) >= 5, "five orders", timeout=20)
    stop.set()
    runner.join(timeout=15)
    (stats,) = result
    assert stats.placed >= 5 and stats.refused == 0 and stats.failed == 0
    docs = list(clients.db.deliveries.find())
    assert len(docs) == stats.placed
    assert {d["customer_id"] for d in docs} <= {"shop-a", "shop-b"}
    assert all(d["status"] == "pending" and d["price_estimate"] is not None for d in docs)


def test_a_random_order_is_within_reach_of_its_station() -> None:
    stations = bart_stations()
    rng = random.Random(1)
    for _ in range(200):
        order = random_order("c", stations, rng)
        station = next(s for s in stations if s.code == order["pickup_station"])
        dest = order["destination"]
        assert 450 <= haversine_m(station.lat, station.lon, dest["lat"], dest["lon"]) <= 4050
        assert 0.2 <= order["package"]["weight_kg"] <= 2.5
