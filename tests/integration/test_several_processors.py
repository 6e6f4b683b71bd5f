"""Several processors in one consumer group, one of them SIGKILLed mid-stream (issue 15, "Many
of each role"), on the partitioned Redis Streams bus and on Kafka.

Two routine-lane processors and an archiver run as the processes `skyhive up` starts
(``python -m skyhive processor --lane routine``, ``... archiver``), on a bus of 4 partitions,
under a steady stream from 20 drones whose batteries run down: each drone's low-battery alert
opens (all before the kill), then escalates to critical (all after it). One processor is
killed 6 s in; the other must take its drones over within seconds (on Redis, once the dead
one's leases ran out: ``claim_idle_ms``; on Kafka, once its session timed out), and escalate
the alerts the dead one opened rather than open others. At the end:
every acknowledged reading is in MongoDB history exactly once, live state shows each drone's
last reading, and each drone has one low-battery alert, never two (two processors judging one
drone at once would each open one).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from polling import wait_for
from skyhive.adapters.stream_partitions import lease_key, partition_stream
from skyhive.adapters.telemetry_repo import TelemetryRepo
from skyhive.bootstrap import bootstrap
from skyhive.services.ingest import Ingest, RawMessage
from skyhive.settings import KafkaConfig, Settings
from skyhive.wiring import Clients

DRONES = 20
PARTITIONS = 4
TICKS = 120  # readings per drone (seq 1..120; seq 0 first, to see everyone at work)
BURST = 5  # each publish: the next 5 readings of every drone, drone after drone
BURST_S = 0.5  # 200 readings/s
# Small batches straddling drones, so both processors are at work on one drone's readings at
# once unless one member reads each drone (with one stream and no partitions, they do, and
# open a drone's alert twice).
BATCH = 7
KILL_AT_TICK = 60
LEASE_MS = 2000  # the claim threshold, a dead member's leases: short, so the test is quick
KAFKA_SESSION_MS = 6000
BASE_MS = 1795428000000  # event times: fixed, whatever the date the test runs
# From the kill until every drone's readings are applied again: at least until the dead
# one's lease (renewed every quarter of it) or session ran out, so it did hold some drones;
# at most that plus a few seconds.
TAKEOVER_S = {
    "redis": (LEASE_MS * 0.75 / 1000 - 0.2, LEASE_MS / 1000 + 4.0),
    "kafka": (KAFKA_SESSION_MS / 2000, KAFKA_SESSION_MS / 1000 + 10.0),
}


@pytest.fixture(
    params=["redis", pytest.param("kafka", marks=pytest.mark.kafka)],
)
def settings(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Settings:
    """The stack's settings on the bus under test; streams and groups of their own (a Kafka
    broker is shared by the session's tests)."""
    tag = uuid.uuid4().hex[:8]
    extra: dict[str, object] = {}
    if request.param == "kafka":
        bootstrap_servers = request.getfixturevalue("embedded_kafka")
        extra = {
            "bus": "kafka",
            "kafka": KafkaConfig(bootstrap=bootstrap_servers, session_timeout_ms=KAFKA_SESSION_MS),
        }
    return make_settings(
        bus_partitions=PARTITIONS,
        claim_idle_ms=LEASE_MS,
        processor_batch_size=BATCH,
        archiver_hold_s=1.0,
        telemetry_stream=f"telemetry-{tag}",
        urgent_stream=f"telemetry-{tag}:urgent",
        processor_group=f"processor-{tag}",
        archiver_group=f"archiver-{tag}",
        **extra,
    )


def role_env(s: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "SKYHIVE_MONGODB_URI": s.mongodb_uri,
        "SKYHIVE_MONGODB_DB": s.mongodb_db,
        # Fixed-date history: no TTL index (the processor's bootstrap would make one).
        "SKYHIVE_HISTORY__EXPIRE": str(s.history.expire).lower(),
        "SKYHIVE_REDIS_URL": s.redis_url,
        "SKYHIVE_REDIS_CLUSTER": str(s.redis_cluster).lower(),
        "SKYHIVE_MQTT_URL": s.mqtt_url,
        "SKYHIVE_DATA_DIR": str(s.data_dir),
        "SKYHIVE_BUS": s.bus,
        "SKYHIVE_KAFKA__BOOTSTRAP": s.kafka.bootstrap,
        "SKYHIVE_KAFKA__SESSION_TIMEOUT_MS": str(s.kafka.session_timeout_ms),
        "SKYHIVE_BUS_PARTITIONS": str(s.bus_partitions),
        "SKYHIVE_CLAIM_IDLE_MS": str(s.claim_idle_ms),
        "SKYHIVE_PROCESSOR_BATCH_SIZE": str(s.processor_batch_size),
        "SKYHIVE_ARCHIVER_HOLD_S": str(s.archiver_hold_s),
        "SKYHIVE_TELEMETRY_STREAM": s.telemetry_stream,
        "SKYHIVE_URGENT_STREAM": s.urgent_stream,
        "SKYHIVE_PROCESSOR_GROUP": s.processor_group,
        "SKYHIVE_ARCHIVER_GROUP": s.archiver_group,
    }


@pytest.fixture
def roles(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts ``python -m skyhive ARGS`` on the settings; stopped (SIGTERM) at teardown, their
    logs printed when the test failed."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{'-'.join(args)}-{len(started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "skyhive", *args],
                env=role_env(settings),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append((proc, log))
        return proc

    yield start
    for proc, _ in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, log in started:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        print(f"--- {log.name} (exit {proc.returncode}):\n{log.read_text()[-3000:]}")


def battery(drone: int, seq: int) -> float:
    """Down a quarter point a reading from 30-40 %: under 25 (warning) between seqs 20 and 58,
    under 10 (critical) between 80 and 118; never 15 points a minute (no battery_drop)."""
    return max(1.0, 30.0 + drone * 0.5 - seq * 0.25)


def reading(prefix: str, drone: int, seq: int) -> bytes:
    return orjson.dumps(
        {
            "drone_id": f"{prefix}{drone}",
            "seq": seq,
            "ts": BASE_MS + seq * 2000,
            "battery_pct": battery(drone, seq),
            "lat": 37.80 + seq * 1e-4,
            "lon": -122.27 + drone * 1e-3,
        }
    )


class Publisher:
    """Every drone's next readings every ``BURST_S``, through ingest (acknowledged once on the
    bus), as a gateway writes what it read in a batch."""

    def __init__(self, ingest: Ingest, prefix: str) -> None:
        self._ingest = ingest
        self._prefix = prefix
        self.seq = 0  # the last tick published
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        for i, first in enumerate(range(1, TICKS + 1, BURST), start=1):
            seqs = range(first, min(first + BURST, TICKS + 1))
            batch = [
                RawMessage(reading(self._prefix, d, seq), "test")
                for d in range(DRONES)
                for seq in seqs
            ]
            self._ingest.submit(batch, hold_back=False)
            self.seq = seqs[-1]
            time.sleep(max(0.0, start + i * BURST_S - time.monotonic()))

    def join(self) -> None:
        self._thread.join(TICKS / BURST * BURST_S + 30)
        assert self.seq == TICKS


def live_seqs(c: Clients, prefix: str) -> list[int]:
    """Each drone's seq in live state (-1: none yet)."""
    states = c.live.get_many([f"{prefix}{d}" for d in range(DRONES)])
    return [int(s["seq"]) if s else -1 for s in states]


def lease_holders(c: Clients, stream: str, group: str) -> list[str | None]:
    keys = [lease_key(partition_stream(stream, p), group) for p in range(PARTITIONS)]
    return [v.decode() if v else None for v in map(c.redis_bytes.get, keys)]


@pytest.mark.timeout(120)
def test_a_processor_killed_mid_stream_loses_and_doubles_nothing(
    settings: Settings, roles: Callable[..., subprocess.Popen[bytes]]
) -> None:
    c = Clients(settings)
    prefix = f"many-{uuid.uuid4().hex[:6]}-"
    try:
        bootstrap(c)  # the processor group, as `up` makes it; the roles make the rest
        first, second = (roles("processor", "--lane", "routine") for _ in range(2))
        roles("archiver")
        # Everyone at work: a first reading of every drone applied.
        publisher = Publisher(c.ingest, prefix)
        c.ingest.submit([RawMessage(reading(prefix, d, 0), "test") for d in range(DRONES)])
        wait_for(lambda: min(live_seqs(c, prefix)) == 0, "the first readings applied", 60, 0.1)
        if settings.bus == "redis":  # both processors hold partitions, 2 each
            names = [f"{socket.gethostname()}-{p.pid}" for p in (first, second)]
            stream, group = settings.telemetry_stream, settings.processor_group

            def shared() -> bool:
                return Counter(lease_holders(c, stream, group)) == dict.fromkeys(names, 2)

            wait_for(shared, "the processors sharing the partitions", 20, 0.1)

        publisher.start()
        wait_for(lambda: publisher.seq >= KILL_AT_TICK, "the stream under way", 30, 0.01)
        first.send_signal(signal.SIGKILL)
        killed_at, kill_seq = time.monotonic(), publisher.seq
        wait_for(lambda: min(live_seqs(c, prefix)) > kill_seq, "all applied again", 60, 0.05)
        took = time.monotonic() - killed_at
        print(f"{settings.bus}: every drone's readings applied again {took:.2f}s after the kill")
        at_least, at_most = TAKEOVER_S[settings.bus]
        assert at_least <= took < at_most
        publisher.join()

        # Live state: each drone's last reading.
        wait_for(lambda: live_seqs(c, prefix) == [TICKS] * DRONES, "live state at the end", 30)
        # History: every reading (all were acknowledged by ingest) exactly once.
        history = TelemetryRepo(c.db)
        expected = {f"{prefix}{d}:{s}" for d in range(DRONES) for s in range(TICKS + 1)}

        def complete() -> list[str] | None:
            ids = history.reading_ids(f"^{prefix}")
            return ids if len(ids) >= len(expected) else None

        stored = Counter(wait_for(complete, "history complete", 30, 0.2))
        assert set(stored) == expected
        assert [k for k, n in stored.items() if n > 1] == []
        # Alerts: one low-battery alert per drone, escalated, never a second one opened.
        alerts = list(c.db.alerts.find({"drone_id": {"$regex": f"^{prefix}"}}))
        per_drone = Counter((a["drone_id"], a["type"]) for a in alerts)
        assert [k for k, n in per_drone.items() if n > 1] == []
        low = {a["drone_id"]: a for a in alerts if a["type"] == "low_battery"}
        assert set(low) == {f"{prefix}{d}" for d in range(DRONES)}
        assert {(a["state"], a["severity"]) for a in low.values()} == {("open", "critical")}
    finally:
        c.close()
