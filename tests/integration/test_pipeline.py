"""Gateway → bus → processor against the real embedded Redis, MongoDB and MQTT broker. The MQTT
cases run on the default broker and on amqtt, the fallback (``BROKERS``)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from polling import wait_for
from skyhive.bootstrap import bootstrap
from skyhive.services.gateway import Gateway
from skyhive.services.ingest import Ingest, RawMessage
from skyhive.services.processor import Processor
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers.archiver import build_archiver
from skyhive.workers.gateway import mqtt_gateway
from skyhive.workers.processor import build_processor

BASE_MS = 1795428000000
# The MQTT cases' brokers: the session's default one (Mosquitto where installed), and amqtt.
BROKERS = pytest.mark.parametrize("settings", ["default", "amqtt"], indirect=True)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], request: pytest.FixtureRequest) -> Settings:
    """As conftest's, or on the session's amqtt broker for a case parametrized "amqtt"."""
    if getattr(request, "param", "default") == "amqtt":
        host, port = request.getfixturevalue("embedded_amqtt")
        return make_settings(mqtt_url=f"mqtt://{host}:{port}", mqtt_port=port)
    return make_settings()


def msg(drone: str, seq: int, battery: float = 80.0, **extra: object) -> dict[str, object]:
    return {
        "drone_id": drone,
        "seq": seq,
        "ts": BASE_MS + seq * 1000,
        "battery_pct": battery,
        "lat": 37.80 + seq * 1e-4,
        "lon": -122.27,
        **extra,
    }


@pytest.fixture
def ingest(clients: Clients) -> Ingest:
    bootstrap(clients)
    return clients.ingest


@pytest.fixture
def processor(clients: Clients, ingest: Ingest) -> Processor:
    p = build_processor(clients, "test-proc")
    p.setup()
    return p


def submit(ingest: Ingest, *bodies: dict[str, object] | bytes) -> None:
    ingest.submit(
        [RawMessage(b if isinstance(b, bytes) else orjson.dumps(b), "test") for b in bodies]
    )


def drain(p: Processor, clients: Clients) -> None:
    """Process everything on the bus: live state and alerts, then history."""
    while p.poll():
        pass
    archive(clients)


def archive(clients: Clients) -> None:
    archiver = build_archiver(clients, "test-archiver")
    archiver.setup()
    while archiver.poll():
        pass


def test_history_live_state_and_dedup(
    clients: Clients, ingest: Ingest, processor: Processor
) -> None:
    submit(ingest, msg("d1", 1), msg("d1", 2), msg("d1", 2), msg("d2", 1))
    drain(processor, clients)
    submit(ingest, msg("d1", 1))  # a replay from the drone, later
    drain(processor, clients)
    assert clients.telemetry.count_for("d1") == 2
    assert processor.totals.duplicates == 2
    state = clients.live.get("d1")
    assert state is not None and state["seq"] == 2 and state["battery_pct"] == 80.0
    near = dict(clients.live.nearby(37.8, -122.27, 1, 10))
    assert set(near) == {"d1", "d2"}
    assert (
        clients.bus.pending_count(
            clients.settings.telemetry_stream, clients.settings.processor_group
        )
        == 0
    )


def test_out_of_order_goes_to_history_but_not_live_state(
    clients: Clients, ingest: Ingest, processor: Processor
) -> None:
    submit(ingest, msg("d3", 10, battery=50))
    drain(processor, clients)
    submit(ingest, msg("d3", 9, battery=60))
    drain(processor, clients)
    state = clients.live.get("d3")
    assert state is not None and state["seq"] == 10 and state["battery_pct"] == 50.0
    assert clients.telemetry.count_for("d3") == 2


def test_alerts_open_escalate_and_are_published(
    clients: Clients, ingest: Ingest, processor: Processor
) -> None:
    pubsub = clients.redis_text.pubsub()
    pubsub.subscribe("alerts:live")
    submit(ingest, msg("d4", 1, battery=20))
    drain(processor, clients)
    submit(
        ingest, msg("d4", 2, battery=15), msg("d4", 3, battery=8), msg("d5", 1, status="emergency")
    )
    drain(processor, clients)
    alerts = {(a.drone_id, a.type): a for a in clients.alerts.list(state="open")}
    low = alerts[("d4", "low_battery")]
    assert low.severity == "critical" and low.count == 3
    assert alerts[("d5", "emergency")].severity == "critical"
    stream = clients.redis_bytes.xrange(clients.settings.alerts_stream)
    changes = [orjson.loads(fields[b"v"])["change"] for _, fields in stream]
    assert changes.count("opened") == 2 and changes.count("escalated") == 1
    live = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and len(live) < 2:
        m = pubsub.get_message(timeout=0.2)
        if m and m["type"] == "message":
            live.extend(orjson.loads(m["data"]))
    pubsub.close()
    assert {a["type"] for a in live} >= {"low_battery"}


def test_malformed_goes_to_dead_letters_with_reason(
    clients: Clients, ingest: Ingest, processor: Processor
) -> None:
    submit(ingest, b"not json", msg("d6", 1, lat=200), msg("d6", 2))
    drain(processor, clients)
    reasons = [d["reason"] for d in clients.deadletters.list()]
    assert any(r.startswith("not JSON") for r in reasons)
    assert any("lat" in r for r in reasons)
    assert clients.telemetry.count_for("d6") == 1


def test_replayed_batch_after_a_crash_is_harmless(
    clients: Clients, ingest: Ingest, processor: Processor
) -> None:
    s = clients.settings
    submit(ingest, msg("d7", 1, battery=5), msg("d7", 2, battery=5))
    # A consumer reads the batch and dies before acknowledging it.
    taken = clients.bus.consume(s.telemetry_stream, s.processor_group, "dead-one", 100, 100)
    assert len(taken) == 2
    processor.process(taken)  # it even wrote everything before dying
    quick = Clients(s.model_copy(update={"processor_claim_idle_ms": 100}))
    try:
        rescuer = build_processor(quick, "rescuer")
        # Re-claimed from the dead consumer once Redis counts the batch idle (100 ms).
        wait_for(lambda: rescuer.poll() == 2, "the batch re-claimed")
    finally:
        quick.close()
    archive(clients)
    assert clients.telemetry.count_for("d7") == 2
    assert clients.bus.pending_count(s.telemetry_stream, s.processor_group) == 0
    [alert] = clients.alerts.list(drone_id="d7")
    assert alert.count == 2


@pytest.fixture
def gateway(settings: Settings, clients: Clients, ingest: Ingest) -> Iterator[Gateway]:
    gw = mqtt_gateway(settings, ingest, client_id=f"gw-{uuid.uuid4().hex[:8]}")
    stop = threading.Event()
    thread = threading.Thread(target=gw.run, args=(stop,), daemon=True)
    thread.start()
    wait_for(lambda: gw.connected, "the gateway subscribed")
    yield gw
    stop.set()
    thread.join(10)


def publish(settings: Settings, items: list[tuple[str, bytes]]) -> None:
    host, port = settings.mqtt_url.removeprefix("mqtt://").split(":")
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    c.connect(host, int(port))
    c.loop_start()
    infos = [c.publish(topic, payload, qos=1) for topic, payload in items]
    for info in infos:
        info.wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


@pytest.mark.mqtt
@BROKERS
def test_gateway_over_real_mqtt(settings: Settings, clients: Clients, gateway: Gateway) -> None:
    good = {k: v for k, v in msg("g1", 1).items() if k != "drone_id"}  # id from the topic
    publish(
        settings,
        [
            ("skyhive/drones/g1/telemetry", orjson.dumps(good)),
            ("skyhive/drones/g1/telemetry", b"\x00\xff garbage"),
            ("skyhive/drones/g2/telemetry", orjson.dumps(msg("g1", 2))),  # id mismatch
            ("skyhive/drones/g1/telemetry", b"x" * (settings.max_message_bytes + 1)),
        ],
    )
    wait_for(lambda: gateway.accepted + gateway.rejected >= 4, "four messages handled")
    assert (gateway.accepted, gateway.rejected) == (1, 3)
    letters = clients.deadletters.list()
    reasons = " | ".join(d["reason"] for d in letters)
    assert "not JSON" in reasons and "does not match topic" in reasons and "oversize" in reasons
    assert {d["source"] for d in letters} == {
        "mqtt:skyhive/drones/g1/telemetry",
        "mqtt:skyhive/drones/g2/telemetry",
    }
    [(_, fields)] = clients.redis_bytes.xrange(settings.telemetry_stream)
    assert fields[b"k"] == b"g1" and orjson.loads(fields[b"v"])["drone_id"] == "g1"


@pytest.mark.mqtt
@BROKERS
def test_messages_published_while_gateway_is_down_are_not_lost(
    settings: Settings, clients: Clients, ingest: Ingest
) -> None:
    client_id = f"gw-{uuid.uuid4().hex[:8]}"

    def run_once(until: Callable[[Gateway], bool]) -> Gateway:
        gw = mqtt_gateway(settings, ingest, client_id=client_id)
        stop = threading.Event()
        thread = threading.Thread(target=gw.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_for(lambda: until(gw), "the gateway")
        finally:
            stop.set()
            thread.join(10)
        return gw

    first = run_once(lambda gw: gw.connected)
    # Kept: the broker must have taken the gateway's DISCONNECT, so that what follows is queued
    # for the absent session; no client can observe that.
    time.sleep(0.3)
    assert first.accepted == 0
    publish(
        settings, [("skyhive/drones/p1/telemetry", orjson.dumps(msg("p1", s))) for s in range(1, 6)]
    )
    second = run_once(lambda gw: gw.accepted >= 5)
    assert second.accepted == 5
    assert clients.redis_bytes.xlen(settings.telemetry_stream) == 5


def test_drone_events_go_to_their_stream_and_bad_ones_are_dead_lettered(
    clients: Clients, ingest: Ingest
) -> None:
    good = {"delivery_id": "dlv-1", "event": "picked_up", "ts": BASE_MS}
    res = ingest.submit(
        [
            RawMessage(orjson.dumps(good), "mqtt:skyhive/drones/e1/events", "e1", "event"),
            RawMessage(b"{oops", "mqtt:skyhive/drones/e1/events", "e1", "event"),
            RawMessage(orjson.dumps({**good, "event": "teleported"}), "mqtt:x", "e1", "event"),
            RawMessage(orjson.dumps({**good, "drone_id": "other"}), "mqtt:x", "e1", "event"),
        ]
    )
    assert (res.accepted, res.rejected) == (1, 3)
    [(_, fields)] = clients.redis_bytes.xrange(clients.settings.events_stream)
    assert fields[b"k"] == b"e1" and orjson.loads(fields[b"v"])["event"] == "picked_up"
    reasons = " | ".join(d["reason"] for d in clients.deadletters.list())
    assert "not JSON" in reasons and "event" in reasons and "does not match topic" in reasons
    assert clients.redis_bytes.xlen(clients.settings.telemetry_stream) == 0


def test_alerts_never_wait_for_history(
    clients: Clients, ingest: Ingest, processor: Processor
) -> None:
    submit(ingest, msg("w1", 1, emergency=True), b"broken")
    while processor.poll():
        pass  # the processor alone: no archiver has run
    assert [a.type for a in clients.alerts.list(drone_id="w1")] == ["emergency"]
    assert clients.telemetry.count_for("w1") == 0
    archive(clients)
    [doc] = clients.telemetry.readings("w1")
    assert doc["unregistered"] is True and doc["emergency"] is True
    assert len(clients.deadletters.list()) == 1  # the broken one, once: by the processor
