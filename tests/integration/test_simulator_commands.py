"""The simulator obeys a deliver command sent over a real MQTT broker and reports the
delivery's events back on the drone's events topic."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from skyhive.domain.commands import DroneEvent, commands_topic, deliver_command, parse_event
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import destination_point
from skyhive.domain.stations import bart_stations
from skyhive.simulator import SimStats, SimulatorConfig, run_simulator

DRONE = "drone-0001"  # the first drone of a fleet starts at the first station
TIMEOUT_S = 20.0

Message = tuple[str, bytes]


@pytest.fixture
def observer(
    embedded_mqtt: tuple[str, int],
) -> Iterator[tuple[mqtt.Client, queue.Queue[Message]]]:
    """A client subscribed to every drone's events and to DRONE's telemetry."""
    inbox: queue.Queue[Message] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"obs-{uuid.uuid4().hex[:8]}")
    client.on_message = lambda _c, _u, m: inbox.put((m.topic, bytes(m.payload)))
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_connect = lambda c, *_args: c.subscribe(
        [("skyhive/drones/+/events", 1), (f"skyhive/drones/{DRONE}/telemetry", 1)]
    )
    client.connect(*embedded_mqtt)
    client.loop_start()
    assert subscribed.wait(10.0)
    yield client, inbox
    client.disconnect()
    client.loop_stop()


def next_message(inbox: queue.Queue[Message], deadline: float) -> Message:
    try:
        return inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
    except queue.Empty:
        pytest.fail(f"nothing from the simulator within {TIMEOUT_S:g} s")


def test_a_commanded_drone_delivers_and_reports_its_events(
    embedded_mqtt: tuple[str, int], observer: tuple[mqtt.Client, queue.Queue[Message]]
) -> None:
    client, inbox = observer
    config = SimulatorConfig(drones=3, rate_hz=5.0, seed=1, autonomous_legs=False, time_scale=20.0)
    registered: list[list[DroneSpec]] = []
    results: list[SimStats | BaseException] = []
    stop = threading.Event()

    def simulate() -> None:
        try:
            results.append(
                run_simulator(
                    config,
                    *embedded_mqtt,
                    stop_event=stop,
                    register=registered.append,
                )
            )
        except BaseException as exc:
            results.append(exc)

    sim = threading.Thread(target=simulate, daemon=True)
    sim.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        topic, _ = next_message(inbox, deadline)  # telemetry: subscribed to commands by now
        assert topic.endswith("/telemetry")

        pickup = bart_stations()[0]
        dest = destination_point(pickup.lat, pickup.lon, 45.0, 1000.0)
        cmd = deliver_command("dlv-it-1", pickup, dest, pickup, datetime.now(UTC), 1.5)
        for target, payload in [
            (DRONE, b"{not json"),  # ignored, with a warning
            ("drone-9999", cmd.to_json()),  # not this simulator's drone
            (DRONE, cmd.to_json()),
        ]:
            client.publish(commands_topic(target), payload, qos=1).wait_for_publish(5.0)

        events: list[DroneEvent] = []
        carried: set[str] = set()
        while not any(e.event == "delivered" for e in events):
            topic, payload = next_message(inbox, deadline)
            body = orjson.loads(payload)
            if topic.endswith("/events"):
                events.append(parse_event(body, topic_drone_id=topic.split("/")[2]))
            elif "payload_kg" in body:
                carried.add(body["delivery_id"])
    finally:
        stop.set()
        sim.join(TIMEOUT_S)

    assert [(e.drone_id, e.delivery_id, e.event) for e in events] == [
        (DRONE, "dlv-it-1", "picked_up"),
        (DRONE, "dlv-it-1", "delivered"),
    ]
    assert carried == {"dlv-it-1"}
    (stats,) = results
    assert isinstance(stats, SimStats)
    assert (stats.commands, stats.bad_commands, stats.events) == (1, 1, 2)
    (specs,) = registered
    assert [(s.drone_id, s.home_station) for s in specs] == [
        (f"drone-000{i + 1}", station.code) for i, station in enumerate(bart_stations()[:3])
    ]
