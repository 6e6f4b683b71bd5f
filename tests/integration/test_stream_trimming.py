"""Trimming never loses unprocessed readings; overload is held back at the door and shown.

Against the real embedded Redis (6.2) and MongoDB-wire server: a paused archiver group with
the stream cap lowered to its minimum (the case that lost 3,999 readings), manual trims of
pending entries, and the lag and backpressure series of /metrics and /readyz.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from auth_helpers import api_client
from skyhive.adapters.redis_streams import LOST_KEY
from skyhive.adapters.stream_trimmer import LOCK, STATE_KEY
from skyhive.bootstrap import bootstrap
from skyhive.services.ingest import IngestPaused, RawMessage
from skyhive.services.stream_trimmer import bounds
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers.archiver import build_archiver
from skyhive.workers.gateway import mqtt_gateway
from skyhive.workers.processor import build_processor
from trim_pass import fresh_pass

BASE_MS = 1795428000000
TEL = "telemetry"


def reading(drone: str, seq: int) -> bytes:
    return orjson.dumps(
        {"drone_id": drone, "seq": seq, "ts": BASE_MS + seq * 1000, "battery_pct": 80.0,
         "lat": 37.80, "lon": -122.27}
    )  # fmt: skip


@pytest.fixture
def small(make_settings: Callable[..., Settings]) -> Iterator[Clients]:
    """The stream cap at its minimum (1,000): ingest is held back once a batch (50) more
    would take the backlog over 800 entries."""
    s = make_settings(
        stream_maxlen=1000,
        bus_backlog_resume=300,
        bus_trim_s=0.05,
        archiver_batch_size=100,
        gateway_batch_size=50,
    )
    c = Clients(s)
    bootstrap(c)
    yield c
    c.close()


def stream_ids(c: Clients) -> list[str]:
    r: Any = c.redis_bytes
    return [i.decode() for i, _ in r.xrange(TEL)]


def test_trim_drops_only_what_every_group_acknowledged(clients: Clients) -> None:
    bus, r = clients.bus, clients.redis_bytes
    for group in ("processor", "archiver"):
        bus.ensure_group(TEL, group)
    ids = bus.publish(TEL, [("d", reading("d", i)) for i in range(3000)])
    while msgs := bus.consume(TEL, "processor", "p", 500, 0):
        bus.ack(TEL, "processor", [m.id for m in msgs])
    read = bus.consume(TEL, "archiver", "a", 2000, 0)  # 2,000 read, only 1,000 acknowledged
    bus.ack(TEL, "archiver", [m.id for m in read[:1000]])

    held = clients.stream_trimmer.trim()

    left = stream_ids(clients)
    assert set(ids[1000:]) <= set(left)  # pending and unread: all still there
    assert len(left) < 2200  # acknowledged by both: gone (whole nodes, so roughly)
    assert held[TEL] == len(left)
    # The archiver can still re-read what it holds pending, whole.
    own = bus.consume(TEL, "archiver", "a", 2000, 0, own_pending=True)
    assert [m.id for m in own] == ids[1000:2000] and all(m.value for m in own)

    # A group that has read nothing holds everything back.
    bus.ensure_group(TEL, "late")
    clients.stream_trimmer.trim()
    assert stream_ids(clients) == left

    # Everyone done: (nearly) nothing left, and never anything beyond the last id.
    r.xgroup_destroy(TEL, "late")
    bus.ack(TEL, "archiver", [m.id for m in own])
    while msgs := bus.consume(TEL, "archiver", "a", 500, 0):
        bus.ack(TEL, "archiver", [m.id for m in msgs])
    clients.stream_trimmer.trim()
    assert r.xlen(TEL) < 200


def test_a_stream_models_group_never_holds_the_stream(clients: Clients) -> None:
    """A stream model (group ``model-*``) that lags or stopped must not hold ingest back: the
    stream is trimmed to the roles' groups, and the model skips what it missed."""
    bus = clients.bus
    for group in ("processor", "archiver", "model-stuck"):
        bus.ensure_group(TEL, group)
    bus.publish(TEL, [("d", reading("d", i)) for i in range(3000)])
    for group in ("processor", "archiver"):
        while msgs := bus.consume(TEL, group, "c", 500, 0):
            bus.ack(TEL, group, [m.id for m in msgs])
    bus.consume(TEL, "model-stuck", "m", 100, 0)  # read a little, acknowledged nothing
    held = clients.stream_trimmer.trim()
    assert held[TEL] < 200 and clients.redis_bytes.xlen(TEL) < 200


def test_nothing_is_trimmed_before_every_role_has_its_group(clients: Clients) -> None:
    """The archiver not started yet (its group is made when it starts): what the processor
    acknowledged stays for it."""
    bus = clients.bus
    bus.ensure_group(TEL, "processor")
    ids = bus.publish(TEL, [("d", reading("d", i)) for i in range(1000)])
    while msgs := bus.consume(TEL, "processor", "p", 500, 0):
        bus.ack(TEL, "processor", [m.id for m in msgs])
    assert clients.stream_trimmer.trim()[TEL] == 1000
    bus.ensure_group(TEL, "archiver")
    got = bus.consume(TEL, "archiver", "a", 2000, 0)
    assert [m.id for m in got] == ids


def test_paused_archiver_with_a_small_cap_loses_nothing(small: Clients) -> None:
    """The issue's case: cap 1,000, archiver paused. Ingest is held back above 800 instead
    of the cap trimming unarchived readings; released under 300; all reach history."""
    c = small
    limit, resume = bounds(c.settings)
    assert (limit, resume) == (800, 300)
    ingest = c.ingest
    processor = build_processor(c, "p")
    processor.setup()
    archiver = build_archiver(c, "a")
    archiver.setup()
    accepted, seq = 0, 0

    def offer(n: int) -> bool:
        nonlocal accepted, seq
        batch = [RawMessage(reading("d1", seq + i), "test") for i in range(n)]
        time.sleep(0.06)  # past the gate's refresh period
        c.redis_bytes.delete(LOCK)  # and its pass runs here
        try:
            accepted += ingest.submit(batch).accepted
        except IngestPaused as exc:
            assert exc.state.engaged and exc.state.backlog >= resume
            return False
        seq += n
        while processor.poll():  # live state keeps up; history does not
            pass
        return True

    for _ in range(40):
        if not offer(50):
            break
    else:
        raise AssertionError("ingest was never held back")
    assert limit - 50 < accepted <= limit
    assert c.redis_bytes.xlen(TEL) == accepted  # the cap trimmed nothing

    # Draining to between the marks keeps ingest held back (hysteresis)...
    for _ in range(4):
        archiver.poll()
    state = fresh_pass(c)
    assert state.engaged and resume <= state.backlog <= limit, state
    assert not offer(10)
    # ...and under the resume mark releases it.
    while archiver.poll():
        pass
    state = fresh_pass(c)
    assert not state.engaged, state
    assert offer(50)
    while archiver.poll():
        pass
    assert len(c.telemetry.reading_ids()) == accepted == seq
    episodes = c.redis_bytes.hgetall("bus:backpressure:episodes")
    assert episodes == {b"started": b"1", b"ended": b"1"}


def test_a_burst_is_held_back_under_the_limit_between_two_passes(small: Clients) -> None:
    """What a process wrote since the last pass counts: a burst stops at the limit, far
    from the cap, however fast it comes."""
    ingest = small.ingest
    accepted = 0
    with pytest.raises(IngestPaused) as held:
        for i in range(100):
            batch = [RawMessage(reading("d", i * 100 + j), "test") for j in range(100)]
            accepted += ingest.submit(batch).accepted
    assert 600 <= accepted <= 800
    assert small.redis_bytes.xlen(TEL) == accepted
    assert held.value.state.engaged and held.value.state.limit == 800


def metric(text: str, name: str, **labels: str) -> float:
    sel = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}{re.escape('{' + sel + '}') if sel else ''} (\S+)$"
    m = re.search(pattern, text, re.M)
    assert m, f"{name} {labels} not in /metrics"
    return float(m.group(1))


@pytest.mark.mqtt
def test_lag_and_backpressure_in_metrics_readyz_and_http_ingest(small: Clients) -> None:
    c = small
    bus = c.bus
    bus.ensure_group(TEL, "archiver")
    bus.publish(TEL, [("d1", reading("d1", i)) for i in range(900)])
    read = bus.consume(TEL, "processor", "p", 900, 0)
    bus.ack(TEL, "processor", [m.id for m in read[:600]])  # 300 pending, 0 unread
    bus.consume(TEL, "archiver", "a", 100, 0)  # 100 pending, 800 unread
    time.sleep(0.05)
    assert fresh_pass(c).engaged  # 900 held > 800

    client = api_client(c)
    text = client.get("/metrics").data.decode()
    assert metric(text, "skyhive_bus_up") == 1
    assert metric(text, "skyhive_bus_stream_length", stream=TEL) == 900
    assert metric(text, "skyhive_bus_group_pending", stream=TEL, group="processor") == 300
    assert metric(text, "skyhive_bus_group_unacked", stream=TEL, group="processor") == 300
    assert metric(text, "skyhive_bus_group_pending", stream=TEL, group="archiver") == 100
    # 800 unread out of 900: interpolated on the ids' clock on Redis 6.2, so only bounded
    # here (the 900 were written within a few milliseconds).
    unread = metric(text, "skyhive_bus_group_undelivered", stream=TEL, group="archiver")
    assert 1 <= unread <= 899
    assert metric(text, "skyhive_bus_group_unacked", stream=TEL, group="archiver") == 100 + unread
    assert metric(text, "skyhive_bus_group_lag_seconds", stream=TEL, group="archiver") >= 0.04
    assert metric(text, "skyhive_ingest_held_back") == 1
    assert metric(text, "skyhive_bus_backlog_limit") == 800
    assert metric(text, "skyhive_ingest_backpressure_transitions_total", edge="started") == 1
    assert metric(text, "skyhive_deadletters_cap") == c.settings.deadletter_maxlen
    assert metric(text, "skyhive_deadletters") == 0

    resp = client.get("/readyz")
    data = resp.get_json()
    assert resp.status_code == 200, data  # lag alone never takes the API out of rotation
    lag = data["lag"]
    assert lag["held_back"] is True and lag["backlog"] == 900 and lag["limit"] == 800
    by_group = {(g["stream"], g["group"]): g for g in lag["groups"]}
    assert by_group[(TEL, "processor")]["pending"] == 300
    assert by_group[(TEL, "archiver")]["lag_s"] > 0

    up = client.post("/api/v1/telemetry", json=[orjson.loads(reading("d1", 5000))])
    assert up.status_code == 503, up.get_json()
    assert up.headers["Retry-After"] == str(c.settings.ingest_retry_after_s)
    assert "held back" in up.get_json()["error"]["message"]


def test_an_entry_trimmed_while_pending_is_dead_lettered_counted_and_acknowledged(
    clients: Clients,
) -> None:
    bus, r = clients.bus, clients.redis_bytes
    bus.ensure_group(TEL, "g")
    ids = bus.publish(TEL, [("d", reading("d", i)) for i in range(20)])
    assert len(bus.consume(TEL, "g", "dead", 20, 0)) == 20
    r.xtrim(TEL, maxlen=0)  # a manual trim, or the safety cap

    # Taken over from the dead consumer (Redis 6.2 does not even name them): none returned.
    assert bus.claim_stale(TEL, "g", "alive", 0, 100) == []
    assert bus.pending_count(TEL, "g") == 0  # acknowledged, so trimming is not held back
    assert r.hgetall(LOST_KEY) == {b"telemetry|g": b"20"}
    letters = clients.deadletters.list(limit=100)
    assert len(letters) == 20
    assert {d["source"] for d in letters} == {f"bus:{TEL}:{i}" for i in ids}
    assert all(d["reason"] == f"trimmed from {TEL} before group g processed it" for d in letters)

    # The same when the consumer itself re-reads its pending entries.
    bus.publish(TEL, [("d", reading("d", 99))])
    assert len(bus.consume(TEL, "g", "c", 10, 0)) == 1
    r.xtrim(TEL, maxlen=0)
    assert bus.consume(TEL, "g", "c", 10, 0, own_pending=True) == []
    assert r.hgetall(LOST_KEY) == {b"telemetry|g": b"21"}

    text = api_client(clients).get("/metrics").data.decode()
    assert metric(text, "skyhive_bus_lost_total", stream=TEL, group="g") == 21
    assert metric(text, "skyhive_deadletters") == 21


@pytest.mark.mqtt
def test_gateway_stops_reading_while_held_back(small: Clients) -> None:
    """Held back, the gateway takes nothing from the broker (which queues); released, it
    takes all of it."""
    c = small
    s = c.settings
    r = c.redis_bytes
    bus = c.bus
    gw = mqtt_gateway(s, c.ingest, client_id=f"gw-{uuid.uuid4().hex[:8]}")
    stop = threading.Event()
    thread = threading.Thread(target=gw.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: gw.connected, 10)
        bus.publish(TEL, [("d0", reading("d0", i)) for i in range(900)])  # nobody reads them
        time.sleep(0.06)
        assert fresh_pass(c).engaged
        wait_for(lambda: gw.held_back, 10)
        host, port = s.mqtt_url.removeprefix("mqtt://").split(":")
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
        pub.connect(host, int(port))
        pub.loop_start()
        infos = [
            pub.publish("skyhive/drones/d2/telemetry", reading("d2", i), qos=1) for i in range(20)
        ]
        for info in infos:
            info.wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        time.sleep(1.0)
        assert gw.accepted == 0 and r.xlen(TEL) == 900  # nothing taken while held back

        for group in ("processor", "archiver"):  # the backlog drains
            bus.ensure_group(TEL, group)
            while msgs := bus.consume(TEL, group, "c", 500, 0):
                bus.ack(TEL, group, [m.id for m in msgs])
        r.delete(LOCK)
        wait_for(lambda: gw.accepted == 20, 15)
        assert not gw.held_back
        assert r.hget(STATE_KEY, "engaged") == b"0"
    finally:
        stop.set()
        thread.join(10)


def wait_for(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
