"""Several gateways on one MQTT shared subscription (``SKYHIVE_GATEWAY_SHARE_GROUP``), on
Mosquitto as `skyhive up` runs it (its password and ACL files; the gateways sign in as the
gateway service): each reading reaches the bus once and both gateways take a share. A stopped
gateway's share waits in its persistent session until it returns (Mosquitto goes on handing it
one): nothing is lost, and nothing is delivered twice."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from polling import wait_for
from skyhive.bootstrap import bootstrap
from skyhive.embedded import Server, embedded_mosquitto, free_port, mosquitto_dir
from skyhive.services.device_credentials import MosquittoAuthFiles, ensure_service_credentials
from skyhive.services.gateway import Gateway
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers.gateway import mqtt_gateway, retire_gateway, subscriptions

HOST = "127.0.0.1"
BASE_MS = 1795428000000

pytestmark = pytest.mark.mqtt


@pytest.fixture
def mosquitto(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Settings]:
    """Settings on a Mosquitto of the test's own, configured as `skyhive up` configures it,
    with the gateways in share group "gw"."""
    port = free_port(HOST)
    settings = make_settings(
        mqtt_url=f"mqtt://{HOST}:{port}",
        data_dir=tmp_path,
        insecure_devices=True,  # the test publishes anonymously; the gateways sign in
        gateway_share_group="gw",
    )
    clients = Clients(settings)
    bootstrap(clients)
    ensure_service_credentials(clients, settings.mqtt_services_path())
    MosquittoAuthFiles(mosquitto_dir(tmp_path), True).write(clients, time.time_ns() // 10**6)
    server: Server = embedded_mosquitto(tmp_path, HOST, port, True)
    server.start()
    try:
        yield settings
    finally:
        server.stop()
        clients.close()


@contextmanager
def running(gateway: Gateway) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=gateway.run, args=(stop,), daemon=True)
    gateway.connect()
    thread.start()
    wait_for(lambda: gateway.connected, "the gateway subscribed")
    try:
        yield stop
    finally:
        stop.set()
        thread.join(10)


def publish(settings: Settings, first: int, n: int) -> None:
    port = int(settings.mqtt_url.rsplit(":", 1)[1])
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{first}")
    pub.connect(HOST, port)
    pub.loop_start()
    infos = []
    for seq in range(first, first + n):
        drone = f"s{seq % 10}"
        body = {"seq": seq, "ts": BASE_MS + seq, "battery_pct": 80.0}
        infos.append(pub.publish(f"skyhive/drones/{drone}/telemetry", orjson.dumps(body), qos=1))
    for info in infos:
        info.wait_for_publish(10)
    pub.loop_stop()
    pub.disconnect()


def on_bus(clients: Clients, settings: Settings) -> list[int]:
    entries = clients.redis_bytes.xrange(settings.telemetry_stream)
    return sorted(orjson.loads(fields[b"v"])["seq"] for _, fields in entries)


def test_gateways_in_a_share_group_split_the_readings_and_cover_for_each_other(
    mosquitto: Settings,
) -> None:
    settings = mosquitto
    assert subscriptions(settings)[0] == "$share/gw/skyhive/drones/+/telemetry"
    clients = Clients(settings)
    try:
        bootstrap(clients)
        a = mqtt_gateway(settings, clients.ingest, "skyhive-gateway-a")
        b = mqtt_gateway(settings, clients.ingest, "skyhive-gateway-b")
        with running(a), running(b) as stop_b:
            publish(settings, 0, 200)
            wait_for(lambda: len(on_bus(clients, settings)) >= 200, "200 readings on the bus")
            assert on_bus(clients, settings) == list(range(200))  # each once
            assert a.accepted > 20 and b.accepted > 20 and a.accepted + b.accepted == 200
            stop_b.set()
            wait_for(lambda: not b.connected, "gateway b stopped")
            before = a.accepted
            publish(settings, 200, 100)
            # Mosquitto goes on handing b its share, queued in b's persistent session: a
            # takes its own at once, b's waits for b to come back under its client id.
            wait_for(lambda: a.accepted - before >= 40, "a's share of the next 100")
            time.sleep(0.5)
            assert len(on_bus(clients, settings)) < 300
            back = mqtt_gateway(settings, clients.ingest, "skyhive-gateway-b")
            with running(back):
                wait_for(lambda: len(on_bus(clients, settings)) >= 300, "b's share, on its return")
                assert on_bus(clients, settings) == list(range(300))  # nothing lost, none twice
                assert a.accepted + b.accepted + back.accepted == 300
    finally:
        clients.close()


def test_a_retired_gateway_hands_over_its_queued_share_and_gets_no_more(
    mosquitto: Settings,
) -> None:
    """`skyhive gateway --retire ID`: what the broker queued for a stopped gateway reaches the
    bus, its session ends, and from then on the others take every reading."""
    settings = mosquitto
    clients = Clients(settings)
    try:
        bootstrap(clients)
        a = mqtt_gateway(settings, clients.ingest, "skyhive-gateway-a")
        b = mqtt_gateway(settings, clients.ingest, "skyhive-gateway-b")
        with running(a):
            with running(b):
                publish(settings, 0, 100)
                wait_for(lambda: len(on_bus(clients, settings)) >= 100, "100 on the bus")
            before = a.accepted
            publish(settings, 100, 100)  # b is gone: its share waits in its session
            wait_for(lambda: a.accepted - before >= 40, "a's share of the next 100")
            time.sleep(0.5)
            waiting = 200 - len(on_bus(clients, settings))
            assert waiting > 10
            drained = retire_gateway(settings, "skyhive-gateway-b", threading.Event())
            assert drained == waiting
            assert on_bus(clients, settings) == list(range(200))  # nothing lost, none twice
            before = a.accepted
            publish(settings, 200, 100)  # b's session no longer exists: all of them to a
            wait_for(lambda: a.accepted - before == 100, "all of the next 100 to a")
            assert on_bus(clients, settings) == list(range(300))
    finally:
        clients.close()


def test_up_refuses_a_share_group_on_amqtt(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SKYHIVE_BROKER": "amqtt",
        "SKYHIVE_GATEWAY_SHARE_GROUP": "gw",
        "SKYHIVE_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "skyhive", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "shared subscriptions" in done.stderr and "amqtt" in done.stderr


def test_retiring_a_gateway_without_a_broker_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYHIVE_")}
    env |= {
        "SKYHIVE_MQTT_URL": f"mqtt://{HOST}:{free_port(HOST)}",
        "SKYHIVE_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "skyhive", "gateway", "--retire", "skyhive-gateway-9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Error: gateway skyhive-gateway-9 not retired: " in done.stderr
    assert "Traceback" not in done.stderr
