"""A broker `kill -9` with a backlog queued for a stopped gateway: what reaches the bus.

The gateway's persistent session is created, the gateway stops, N QoS 1 readings are
published and acknowledged by the broker, the broker is killed (SIGKILL) after ``wait_s``,
restarted on its data, and the gateway started again. ``crash_under_backlog`` returns how
many readings reached the bus; docs/benchmarks.md ("Broker crash") has the figures. The
test holds Mosquitto, with the persistence SkyHive configures (saved every second), to its
documented guarantee: a backlog older than the autosave interval survives the crash.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from skyhive.bootstrap import bootstrap
from skyhive.domain.device_access import MOSQUITTO_AUTOSAVE_S
from skyhive.embedded import (
    MOSQUITTO,
    BrokerAccess,
    Server,
    free_port,
    mosquitto_server,
    mqtt_broker,
)
from skyhive.services.gateway import MqttGateway
from skyhive.services.ingest import ingest_for
from skyhive.settings import Settings
from skyhive.wiring import Clients

HOST = "127.0.0.1"
BASE_MS = 1795428000000


def make_broker(kind: str, data_dir: Path, port: int) -> Server:
    if kind == "amqtt":
        return mqtt_broker(data_dir, HOST, port, BrokerAccess(insecure_devices=True))
    return mosquitto_server(data_dir, HOST, port, allow_anonymous=True)


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _publish(port: int, n: int) -> int:
    """N readings at QoS 1; returns how many the broker acknowledged."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    c.max_inflight_messages_set(100)
    c.connect(HOST, port)
    c.loop_start()
    infos = []
    for seq in range(1, n + 1):
        drone = f"bc-{seq % 50}"
        body = {"seq": seq, "ts": BASE_MS + seq, "battery_pct": 50.0}
        infos.append(c.publish(f"skyhive/drones/{drone}/telemetry", orjson.dumps(body), qos=1))
    acked = 0
    for info in infos:
        info.wait_for_publish(30)
        acked += info.is_published()
    c.disconnect()
    c.loop_stop()
    return acked


def _run_gateway(
    settings: Settings, clients: Clients, client_id: str, until: Callable[[], bool], timeout: float
) -> None:
    gw = MqttGateway(settings, ingest_for(clients), client_id=client_id)
    stop = threading.Event()
    thread = threading.Thread(target=gw.run, args=(stop,), daemon=True)
    thread.start()
    try:
        _wait(lambda: gw.connected, 15)
        _wait(until, timeout)
    finally:
        stop.set()
        thread.join(15)


def crash_under_backlog(
    kind: str, settings: Settings, data_dir: Path, n: int, wait_s: float
) -> tuple[int, int]:
    """(acknowledged by the broker, on the bus after the crash and restart)."""
    port = free_port(HOST)
    s = settings.model_copy(update={"mqtt_url": f"mqtt://{HOST}:{port}", "mqtt_port": port})
    clients = Clients(s)
    server = make_broker(kind, data_dir, port)
    server.start()
    try:
        bootstrap(clients)

        def on_bus() -> int:
            return int(clients.redis_bytes.xlen(s.telemetry_stream))

        gw_id = f"gw-{uuid.uuid4().hex[:8]}"
        _run_gateway(s, clients, gw_id, lambda: False, 0.5)  # creates the persistent session
        time.sleep(MOSQUITTO_AUTOSAVE_S + 1.0)  # the session itself is saved
        acked = _publish(port, n)
        time.sleep(wait_s)
        assert server.proc is not None
        server.proc.kill()  # SIGKILL: no shutdown save
        server.proc.wait()
        server.start()
        _run_gateway(s, clients, gw_id, lambda: on_bus() >= acked, 20)
        time.sleep(0.5)  # anything beyond the acknowledged (a redelivery) would show too
        return acked, on_bus()
    finally:
        server.stop()
        clients.close()


@pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto is not installed")
def test_mosquitto_keeps_a_saved_backlog_across_kill_9(settings: Settings, tmp_path: Path) -> None:
    acked, on_bus = crash_under_backlog(
        "mosquitto", settings, tmp_path, 2000, wait_s=MOSQUITTO_AUTOSAVE_S + 1.5
    )
    assert acked == 2000
    assert on_bus == acked


@pytest.mark.skipif(
    not os.environ.get("SKYHIVE_MEASURE_BROKER_CRASH"), reason="a measurement (docs/benchmarks.md)"
)
@pytest.mark.parametrize("kind", ["amqtt", "mosquitto"])
@pytest.mark.parametrize("wait_s", [0.0, MOSQUITTO_AUTOSAVE_S + 1.5])
def test_measure_broker_crash(kind: str, wait_s: float, settings: Settings, tmp_path: Path) -> None:
    n = int(os.environ.get("SKYHIVE_MEASURE_BROKER_CRASH_N", "5000"))
    acked, on_bus = crash_under_backlog(kind, settings, tmp_path, n, wait_s)
    print(
        f"\nbroker-crash {kind} kill_after={wait_s}s acked={acked} on_bus={on_bus} "
        f"lost={acked - on_bus}"
    )


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(
    not os.environ.get("SKYHIVE_MEASURE_BROKER_CRASH") or not os.path.exists(MOSQUITTO),
    reason="a measurement (docs/benchmarks.md)",
)
@pytest.mark.parametrize("backlog", [0, 20_000, 100_000])
def test_measure_mosquitto_save_cost(backlog: int, tmp_path: Path) -> None:
    """CPU Mosquitto spends rewriting its database every second, with a backlog queued for
    a stopped persistent session (the cost of ``autosave_interval 1``)."""
    port = free_port(HOST)
    server = mosquitto_server(tmp_path, HOST, port, allow_anonymous=True)
    server.start()
    try:
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw", clean_session=False)
        sub.connect(HOST, port)
        sub.loop_start()
        sub.subscribe("skyhive/drones/+/telemetry", 1)
        time.sleep(0.5)
        sub.disconnect()
        sub.loop_stop()
        for start in range(0, backlog, 5000):
            _publish(port, min(5000, backlog - start))
        time.sleep(1.5)
        assert server.proc is not None
        c0, t0 = _cpu_s(server.proc.pid), time.monotonic()
        time.sleep(5)
        share = (_cpu_s(server.proc.pid) - c0) / (time.monotonic() - t0)
        size = sum(p.stat().st_size for p in tmp_path.rglob("mosquitto.db"))
        print(f"\nmosquitto backlog={backlog} cpu={share:.1%} db={size / 1e6:.1f}MB")
    finally:
        server.stop()
