"""`skyhive up` with the bus on Kafka (``SKYHIVE_BUS=kafka``), against a real Kafka-protocol
broker (tansu, ``skyhive/bench/kafka_broker.py``): telemetry from MQTT through the gateway, the
processor and the archiver over Kafka topics, alerts through Kafka to the API, and a command
through the Redis-hosted commands stream back to the drone over MQTT."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from confluent_kafka.admin import AdminClient
from paho.mqtt.enums import CallbackAPIVersion

from e2e.harness import Up, wait_for
from e2e.test_up import flight_with_faults, publish, reading, register

pytestmark = pytest.mark.e2e
DRONE = "kafka-1"
PARTITIONS = 3


@pytest.fixture(scope="module")
def up(embedded_kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    env = {
        "SKYHIVE_BUS": "kafka",
        "SKYHIVE_KAFKA__BOOTSTRAP": embedded_kafka,
        "SKYHIVE_BUS_PARTITIONS": str(PARTITIONS),
        "SKYHIVE_KAFKA__SESSION_TIMEOUT_MS": "6000",
        # Topics and groups of its own: the session's broker is shared with other tests, and
        # a Kafka group or topic is the whole cluster's.
        "SKYHIVE_TELEMETRY_STREAM": "e2e-telemetry",
        "SKYHIVE_URGENT_STREAM": "e2e-telemetry:urgent",
        "SKYHIVE_EVENTS_STREAM": "e2e-events",
        "SKYHIVE_ALERTS_STREAM": "e2e-alerts",
        "SKYHIVE_PROCESSOR_GROUP": "e2e-processor",
        "SKYHIVE_ARCHIVER_GROUP": "e2e-archiver",
        "SKYHIVE_NOTIFIER_GROUP": "e2e-notifier",
    }
    u = Up(tmp_path_factory.mktemp("e2e-kafka") / "data", env=env)
    u.start()
    yield u
    if u.proc and u.proc.poll() is None:
        u.stop()


def test_up_refuses_kafka_without_brokers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYHIVE_")}
    env["SKYHIVE_BUS"] = "kafka"
    argv = [sys.executable, "-m", "skyhive", "up", "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "SKYHIVE_BUS=kafka needs SKYHIVE_KAFKA__BOOTSTRAP" in done.stderr


def test_telemetry_and_alerts_flow_over_kafka(up: Up, embedded_kafka: str) -> None:
    assert f"Kafka at {embedded_kafka}" in up.log_text()
    login = register(up, DRONE)
    publish(up.mqtt_port, flight_with_faults(f"skyhive/drones/{DRONE}/telemetry"), login)

    wait_for(lambda: up.get(f"/api/v1/drones/{DRONE}")["seq"] == 21, what="live state at seq 21")
    assert up.get(f"/api/v1/drones/{DRONE}")["battery_pct"] == 9
    wait_for(
        lambda: len(up.get(f"/api/v1/drones/{DRONE}/telemetry?limit=100")["items"]) == 21,
        what="21 in history",
    )
    history = up.get(f"/api/v1/drones/{DRONE}/telemetry?limit=100")["items"]
    assert [h["seq"] for h in history] == list(range(21, 0, -1))  # once each
    alerts = {a["type"]: a for a in up.get(f"/api/v1/alerts?state=open&drone_id={DRONE}")["items"]}
    assert alerts["emergency"]["severity"] == "critical"
    assert alerts["low_battery"]["severity"] == "critical"
    reasons = [d["reason"] for d in up.get("/api/v1/deadletters")["items"]]
    assert any(r.startswith("not JSON") for r in reasons)

    topics = AdminClient({"bootstrap.servers": embedded_kafka}).list_topics(timeout=5).topics
    for name in ("e2e-telemetry", "e2e-telemetry.urgent", "e2e-alerts"):
        assert len(topics[name].partitions) == PARTITIONS, name
    assert "commands" not in topics  # on Redis: claimed and appended in one script

    def caught_up() -> bool:
        lag = up.get("/api/v1/bus")["lag"]
        groups = {(g["stream"], g["group"]): g for g in lag["groups"]}
        wanted = [
            ("e2e-telemetry", "e2e-processor"),
            ("e2e-telemetry", "e2e-archiver"),
            ("e2e-alerts", "e2e-notifier"),
        ]
        return all(k in groups and groups[k]["unacked"] == 0 for k in wanted)

    wait_for(caught_up, what="every Kafka group caught up in /api/v1/bus")
    metrics = up.text("/metrics")
    assert 'skyhive_bus_group_unacked{group="e2e-archiver",stream="e2e-telemetry"} 0.0' in metrics


def test_a_command_reaches_the_drone_while_the_bus_is_on_kafka(up: Up) -> None:
    login = register(up, "kafka-2")
    publish(up.mqtt_port, [("skyhive/drones/kafka-2/telemetry", reading(1, 80))], login)
    wait_for(lambda: up.status("/api/v1/drones/kafka-2") == 200, what="kafka-2 live")
    got: list[dict[str, object]] = []
    subscribed = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kafka-2-commands")
    c.username_pw_set(*login)
    c.on_subscribe = lambda *_a: subscribed.set()
    c.on_message = lambda _c, _u, m: got.append(orjson.loads(m.payload))
    c.connect("127.0.0.1", up.mqtt_port)
    c.subscribe("skyhive/drones/kafka-2/commands", qos=1)
    c.loop_start()
    try:
        assert subscribed.wait(10)
        status, body = up.post(
            "/api/v1/drones/kafka-2/commands",
            {"action": "return_to_station", "reason": "e2e on kafka"},
        )
        assert status == 202, body
        wait_for(lambda: bool(got), what="the command over MQTT")
    finally:
        c.disconnect()
        c.loop_stop()
    assert got[0]["type"] == "return_to_station"
