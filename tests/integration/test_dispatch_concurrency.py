"""Two dispatcher processes, 200 pending orders: no drone and no delivery is assigned twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
from customer_seed import add_customers

from skyhive.bootstrap import bootstrap
from skyhive.domain.deliveries import DeliveryRequest
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.stations import bart_stations
from skyhive.services.ingest import RawMessage
from skyhive.wiring import Clients
from skyhive.workers.processor import build_processor

ORDERS, DRONES = 200, 150  # fewer drones than orders: contention for every drone


def test_two_dispatchers_never_double_assign(clients: Clients, tmp_path: Path) -> None:
    s = clients.settings
    bootstrap(clients)
    add_customers(clients, "c")
    station = next(x for x in bart_stations() if x.code == "12TH")
    now_ms = int(time.time() * 1000)
    clients.fleet.ensure_registered(
        [DroneSpec(drone_id=f"c{i}", home_station="12TH") for i in range(DRONES)]
    )
    clients.ingest.submit(
        [
            RawMessage(
                orjson.dumps(
                    {
                        "drone_id": f"c{i}",
                        "seq": 1,
                        "ts": now_ms,
                        "battery_pct": 100,
                        "status": "idle",
                        "lat": station.lat + (i % 10) * 1e-4,
                        "lon": station.lon + (i // 10) * 1e-4,
                    }
                ),
                "test",
            )
            for i in range(DRONES)
        ]
    )
    proc = build_processor(clients, "t")
    proc.setup()
    while proc.poll():
        pass
    env = {
        **os.environ,
        "SKYHIVE_MONGODB_URI": s.mongodb_uri,
        "SKYHIVE_REDIS_URL": s.redis_url,
        "SKYHIVE_REDIS_CLUSTER": str(s.redis_cluster).lower(),
        "SKYHIVE_MQTT_URL": s.mqtt_url,
        "SKYHIVE_MONGODB_DB": s.mongodb_db,
        # Fixed-date history: no TTL index (the processor's bootstrap would make one).
        "SKYHIVE_HISTORY__EXPIRE": str(s.history.expire).lower(),
        # Small batches, so the two processes interleave and really race for drones.
        "SKYHIVE_DISPATCH_BATCH": "5",
    }
    logs = [tmp_path / f"dispatcher-{n}.log" for n in range(2)]
    procs = []
    for log in logs:
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "skyhive", "dispatcher"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=out,
                )
            )
    try:
        # Orders arrive once both dispatchers are running, so the two race for every order.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(_running(log) for log in logs):
            time.sleep(0.2)
        assert all(_running(log) for log in logs)
        svc = clients.delivery_service
        ids = []
        for i in range(ORDERS):
            req = DeliveryRequest.model_validate(
                {
                    "customer_id": "c",
                    "pickup_station": "12TH",
                    "order_id": f"race-{i}",
                    "destination": {"lat": station.lat + 0.01, "lon": station.lon},
                    "package": {"weight_kg": 1.0, "size": "small"},
                }
            )
            ids.append(svc.create(req)[0].id)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assigned = clients.db.deliveries.count_documents({"status": "assigned"})
            if assigned >= DRONES:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # let both run a few more ticks over the remaining pending orders
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)

    docs = list(clients.db.deliveries.find({"_id": {"$in": ids}}))
    by_status = Counter(d["status"] for d in docs)
    assert by_status == {"assigned": DRONES, "pending": ORDERS - DRONES}
    drones = [d["drone_id"] for d in docs if d["status"] == "assigned"]
    assert len(set(drones)) == len(drones) == DRONES  # no drone twice
    for d in docs:  # no delivery assigned twice
        assert [t["status"] for t in d["timeline"]].count("assigned") <= 1
    claims = clients.dispatch_queue.claimed([f"c{i}" for i in range(DRONES)])
    assert sorted(claims.values()) == sorted(d["_id"] for d in docs if d["status"] == "assigned")
    # Both processes took part.
    assert len({d["dispatch"]["dispatcher"] for d in docs if d["status"] == "assigned"}) == 2


def _running(log: Path) -> bool:
    return b"running" in log.read_bytes()
