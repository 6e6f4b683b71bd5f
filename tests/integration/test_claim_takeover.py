"""Pending work of a dead consumer is taken over within seconds, in every consumer group; a
slow consumer that is alive keeps its batch (issue 12, "Pending work taken over promptly").

The dead consumer is a real process: it reads entries through its group, never acknowledges
them and is killed with SIGKILL. The rescuers run the roles' own polling loops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
import pytest

from redis_access import client_url
from skyhive.bootstrap import bootstrap
from skyhive.domain.telemetry import parse_telemetry
from skyhive.ports.bus import BusMessage
from skyhive.services.group_consumer import GroupConsumer
from skyhive.services.ingest import encode_for_bus
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers import runner
from skyhive.workers.archiver import build_archiver
from skyhive.workers.notifier import build_notifier
from skyhive.workers.processor import build_processor

BASE_MS = 1795428000000
IDLE_MS = 2000  # short, so the test is quick; the default is 5 s
ENTRIES = 50

# Reads COUNT entries as consumer "dead" of GROUP on STREAM, says how many, then waits to be
# killed (it never acknowledges).
_DEAD_CONSUMER = """
import sys, time
from redis_access import connect_url
url, stream, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
r = connect_url(url)
resp = r.xreadgroup(group, "dead", {stream: ">"}, count=count)
print(len(resp[0][1]) if resp else 0, flush=True)
time.sleep(600)
"""


def reading(drone: str, seq: int) -> bytes:
    body = {
        "drone_id": drone,
        "seq": seq,
        "ts": BASE_MS + seq * 1000,
        "battery_pct": 80.0,
        "lat": 37.80 + seq * 1e-4,
        "lon": -122.27,
    }
    return encode_for_bus(parse_telemetry(orjson.dumps(body)))


def alert_event(i: int) -> bytes:
    return orjson.dumps(
        {"id": f"a-{i}", "drone_id": "drone-1", "type": "low_battery", "change": "opened"}
    )


def read_and_die(settings: Settings, stream: str, group: str, count: int) -> float:
    """A consumer process reads ``count`` entries and is killed; when it died (monotonic)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _DEAD_CONSUMER, client_url(settings), stream, group, str(count)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert int(proc.stdout.readline()) == count
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    return time.monotonic()


@dataclass
class Group:
    """A consumer group under test: its stream, its name, what it is fed and its role's
    loop (run until the event is set)."""

    stream: str
    group: str
    payload: Callable[[int], bytes]
    run: Callable[[Settings, Clients, threading.Event], None]


def _processor_loop(stream: str | None) -> Callable[[Settings, Clients, threading.Event], None]:
    def run(settings: Settings, clients: Clients, stop: threading.Event) -> None:
        p = build_processor(clients, "rescuer", stream=stream)
        p.setup()
        runner.polling("processor", p.poll, p.batch_size, 0.0)(stop)

    return run


def _archiver_loop(settings: Settings, clients: Clients, stop: threading.Event) -> None:
    a = build_archiver(clients, "rescuer")
    a.setup()
    runner.polling("archiver", a.poll, 100, 0.0)(stop)


def _notifier_loop(settings: Settings, clients: Clients, stop: threading.Event) -> None:
    n = build_notifier(clients, "rescuer")  # claim_idle_ms from the settings
    n.setup()
    n.run(stop)


def groups(s: Settings) -> dict[str, Group]:
    return {
        "processor": Group(
            s.telemetry_stream, s.processor_group, lambda i: reading("d1", i), _processor_loop(None)
        ),
        "urgent lane": Group(
            s.urgent_stream,
            s.processor_group,
            lambda i: reading("d2", i),
            _processor_loop(s.urgent_stream),
        ),
        "archiver": Group(
            s.telemetry_stream, s.archiver_group, lambda i: reading("d3", i), _archiver_loop
        ),
        "notifier": Group(s.alerts_stream, s.notifier_group, alert_event, _notifier_loop),
    }


@contextmanager
def running(
    loop: Callable[[Settings, Clients, threading.Event], None], settings: Settings
) -> Iterator[None]:
    clients = Clients(settings)
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(settings, clients, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
        clients.close()


def test_one_claim_threshold_for_every_group(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    assert s.claim_idle_ms == 5000 and s.group_claim_idle_ms() == 5000
    s = make_settings(claim_idle_ms=1234)
    clients = Clients(s)
    try:
        assert build_processor(clients, "p")._group.claim_idle_ms == 1234
        assert build_archiver(clients, "a").claim_idle_ms == 1234
        assert build_notifier(clients, "n")._claim_idle_ms == 1234
    finally:
        clients.close()


@pytest.mark.parametrize("name", ["processor", "urgent lane", "archiver", "notifier"])
def test_a_dead_consumers_entries_are_taken_over_within_seconds(
    make_settings: Callable[..., Settings], name: str
) -> None:
    settings = make_settings(claim_idle_ms=IDLE_MS)
    g = groups(settings)[name]
    clients = Clients(settings)
    try:
        bootstrap(clients)
        clients.bus.ensure_group(g.stream, g.group)
        clients.bus.publish(g.stream, [("k", g.payload(i)) for i in range(ENTRIES)])
        died = read_and_die(settings, g.stream, g.group, ENTRIES)
        assert clients.bus.pending_count(g.stream, g.group) == ENTRIES
        with running(g.run, settings):
            deadline = died + IDLE_MS / 1000 + 6.0  # generous: the machine may be loaded
            while clients.bus.pending_count(g.stream, g.group) and time.monotonic() < deadline:
                time.sleep(0.05)
            taken = time.monotonic() - died
        assert clients.bus.pending_count(g.stream, g.group) == 0, f"not taken over in {taken}s"
        # Not before they were idle for the threshold (a live consumer would be robbed).
        assert taken >= IDLE_MS / 1000 - 0.2
        if name == "archiver":
            assert clients.telemetry.count_for("d3") == ENTRIES
        print(f"{name}: taken over {taken:.2f}s after the consumer died (idle {IDLE_MS} ms)")
    finally:
        clients.close()


def test_a_slow_consumer_that_is_alive_keeps_its_batch(settings: Settings) -> None:
    """A batch that outlasts the threshold three times over is re-claimed by its consumer
    while it runs: another consumer polling all along never gets it, so nothing is done
    twice."""
    clients = Clients(settings)
    stream, group = "claim-test", "slow"
    handled: dict[str, list[str]] = {"slow": [], "other": []}

    def consumer(name: str) -> GroupConsumer:
        return GroupConsumer(
            clients.bus, stream, group, name, 10, 50, 300, clients.clock, keep_claimed=True
        )

    def slow(msgs: list[BusMessage]) -> None:
        handled["slow"] += [m.id for m in msgs]
        time.sleep(1.0)

    def other(msgs: list[BusMessage]) -> None:
        handled["other"] += [m.id for m in msgs]

    try:
        clients.bus.ensure_group(stream, group)
        clients.bus.publish(stream, [("k", b"x") for _ in range(5)])
        first, second = consumer("slow"), consumer("other")
        stop = threading.Event()

        def poll_other() -> None:
            while not stop.is_set():
                second.poll(other)

        thread = threading.Thread(target=poll_other, daemon=True)
        assert first.poll(lambda msgs: (thread.start(), slow(msgs))) == 5
        stop.set()
        thread.join(10)
        assert len(handled["slow"]) == 5
        assert handled["other"] == []
        assert clients.bus.pending_count(stream, group) == 0
    finally:
        clients.redis_bytes.delete(stream)
        clients.close()
