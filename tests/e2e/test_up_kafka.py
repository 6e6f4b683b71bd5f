"""`skyhive up` with the bus on Kafka (``SKYHIVE_BUS=kafka``), against a real Kafka-protocol
broker (tansu, ``skyhive/bench/kafka_broker.py``): telemetry from MQTT through the gateway, the
processor and the archiver over Kafka topics, alerts through Kafka to the API, and a command
through the Redis-hosted commands stream back to the drone over MQTT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from e2e.harness import Up, refusal, running, wait_for
from e2e.test_up import command_reaches, fly_with_faults

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
    yield from running(tmp_path_factory.mktemp("e2e-kafka") / "data", env)


def test_up_refuses_kafka_without_brokers(tmp_path: Path) -> None:
    assert "SKYHIVE_BUS=kafka needs SKYHIVE_KAFKA__BOOTSTRAP" in refusal(
        tmp_path / "data", {"SKYHIVE_BUS": "kafka"}
    )


def test_telemetry_and_alerts_flow_over_kafka(up: Up, embedded_kafka: str) -> None:
    assert f"Kafka at {embedded_kafka}" in up.log_text()
    fly_with_faults(up, DRONE)

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
    assert command_reaches(up, "kafka-2", "e2e on kafka")["type"] == "return_to_station"
