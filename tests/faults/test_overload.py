"""Overload and trimming under a running `skyhive up` (issue 12): more readings than the stack
can take, and a consumer group frozen while readings keep coming. Every reading the broker
acknowledged must end up in history exactly once, the lag must be visible where an operator
looks (/metrics, /readyz, the dashboard's GET /api/v1/bus) and gone once the load is.

Where an overload piles up depends on the broker: amqtt, the first stage to saturate,
acknowledges about what the stack can take and the rest waits (and, past a bounded outbox, is
dropped) in the devices; Mosquitto (the default) acknowledges everything and queues it for the
gateway's session, and the gateway, cheaper than what follows it, puts it on the bus, where the
processor and the archiver trail behind. Backpressure proper, a bus over its backlog limit, is
the trimming case's.

Bounded: about 2-3 min for the overload (a minute of load, then the excess drains) and 40 s
for the trimming case on two cores. The
figures are printed and appended to ``<tmp>/fault-figures.jsonl`` for docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from e2e.harness import Up, role_pids, wait_for
from faults.conftest import history, record_figures, stack_file
from faults.load import Load
from skyhive.bench.stream_tap import StreamTap, stream_tap

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

# Overload is relative to the machine: a rate one machine cannot take, a faster or quieter one
# takes whole (CI's machine took all of a fixed 3,000/s while this one took 2,432/s). So the
# stack runs on one CPU and the load generator on the other (``up_on_one_core``): the
# generator can offer its rate whatever else shares the machine, and the stack's capacity is
# its own. That capacity is measured, not assumed: PROBE_S at PROBE_RATE, more than one CPU
# takes; from PROBE_FROM_S on, what the processor got through per second (entries put on the
# bus, counted live, less those its group has yet to acknowledge; not the archiver's, which
# holds readings for seconds by design) is the sustainable rate, and the load goes on at twice
# that. The estimate is taken again every scrape over everything since the probe (the first
# seconds of a fresh stack run slow: one CI run measured 1,219/s in the probe and 2,954/s over
# the minute), and the rate follows twice the highest. The case asserts at least
# OVERLOAD_FACTOR over the whole minute and records the factor it got.
PROBE_RATE = 8000.0
PROBE_FROM_S = 3.0
PROBE_S = 8.0
OVERLOAD_FACTOR = 1.5
OVERLOAD_S = 60.0
OVERLOAD_DRONES = 500  # a fleet's worth: per-drone work in the processor is part of the cost
# A device outbox: a reading due while this many sent ones await their PUBACK is not sent.
# About 3 s of what the broker takes, so the tail after the load stays short.
OUTBOX = 5000
BEHIND_S = 3.0  # the dashboard badge's threshold (dashboard/static/js/ingest.js)
# Backlog gone after the load stops: with Mosquitto up to a minute's excess, queued in the
# broker, drains at what the stack takes.
DRAIN_BOUND_S = 150.0

TELEMETRY_GROUPS = {("telemetry", "processor"), ("telemetry", "archiver"),
                    ("telemetry:urgent", "processor")}  # fmt: skip

# Trimming: the cap at its minimum (1,000) keeps the limit at 800 (80% of it); batches of
# 100 hold ingest back once the backlog is over 700 and release it under 300.
TRIM_ENV = {
    "SKYHIVE_STREAM_MAXLEN": "1000",
    "SKYHIVE_BUS_BACKLOG_LIMIT": "800",
    "SKYHIVE_BUS_BACKLOG_RESUME": "300",
    "SKYHIVE_GATEWAY_BATCH_SIZE": "100",
}
TRIM_RATE = 400.0
FREEZE_AT_S = 3.0
FREEZE_S = 15.0


@pytest.fixture
def up_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The env a case asks for with ``indirect`` parametrization (none by default)."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def up_on_one_core(tmp_path: Path) -> Iterator[Up]:
    """`skyhive up` with every process of the stack on the first CPU, and this test's
    threads (the load generator's included, started later) on the others. Affinity is
    per thread and inherited: `up` is started from this thread while it is on the stack's
    CPU, and every process `up` starts or restarts inherits that."""
    before = os.sched_getaffinity(0)
    cpus = sorted(before)
    stack_cpus, load_cpus = ({cpus[0]}, set(cpus[1:])) if len(cpus) > 1 else (before, before)
    # The stream models are off: an analytical consumer (its group never holds the stream,
    # `bench models` measures it) that would take the one core from the pipeline measured.
    env = {"SKYHIVE_INSECURE_DEVICES": "true", "SKYHIVE_MODELS__ENABLED": "[]"}
    u = Up(tmp_path / "data", env=env)
    os.sched_setaffinity(0, stack_cpus)
    try:
        u.start()
    finally:
        os.sched_setaffinity(0, load_cpus)
    try:
        yield u
    finally:
        os.sched_setaffinity(0, before)
        if u.proc is not None and u.proc.poll() is None:
            u.stop()


# --- what an operator sees --------------------------------------------------------------

_SAMPLE = re.compile(r"^(skyhive_[a-z_]+)\{([^}]*)\} (\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def group_series(text: str, name: str) -> dict[tuple[str, str], float]:
    """One per-group series of /metrics, by (stream, group)."""
    out = {}
    for n, labels, value in _SAMPLE.findall(text):
        if n == name:
            d = dict(_LABEL.findall(labels))
            out[(d["stream"], d["group"])] = float(value)
    return out


def plain_value(text: str, name: str) -> float | None:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def lost_total(text: str) -> float:
    return sum(group_series(text, "skyhive_bus_lost_total").values())


INGEST_JS = Path(__file__).parents[2] / "src/skyhive/dashboard/static/js/ingest.js"


def dashboard_badges(lags: list[dict[str, Any] | None]) -> list[str | None]:
    """What the dashboard's header badge says for each ``lag`` of GET /api/v1/bus: the
    dashboard's own ``describe`` (dashboard/static/js/ingest.js) run by node, or without
    node its mirror below (the same verdicts; numbers without separators)."""
    node = shutil.which("node")
    if node is None:
        return [badge(lag) for lag in lags]
    script = (
        f"import {{ describe }} from {json.dumps(INGEST_JS.as_uri())};"
        'import { readFileSync } from "node:fs";'
        'const lags = JSON.parse(readFileSync(0, "utf8"));'
        "console.log(JSON.stringify(lags.map(describe)));"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(lags),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return list(json.loads(done.stdout))


def badge(lag: dict[str, Any] | None) -> str | None:
    """Python mirror of the dashboard badge's ``describe`` (dashboard/static/js/ingest.js)."""
    if not lag:
        return None
    if lag["held_back"]:
        return f"Ingest held back: {lag['backlog']} readings waiting (limit {lag['limit']})"
    worst = max(lag["groups"], key=lambda g: g["lag_s"], default=None)
    if worst is None or worst["lag_s"] < BEHIND_S:
        return None
    return f"Ingest behind: {worst['group']} {worst['lag_s']:.0f} s ({worst['unacked']} waiting)"


def telemetry_unacked(up: Up) -> dict[tuple[str, str], int]:
    lag = up.get("/api/v1/bus")["lag"]
    return {(g["stream"], g["group"]): int(g["unacked"]) for g in lag["groups"]
            if (g["stream"], g["group"]) in TELEMETRY_GROUPS}  # fmt: skip


def on_bus(tap: StreamTap) -> int:
    """Readings the gateway has put on the bus since ``tap`` started."""
    return tap.count("telemetry") + tap.count("telemetry:urgent")


def processed(up: Up, tap: StreamTap) -> int:
    """About how many of those the processor has acknowledged."""
    unacked = telemetry_unacked(up)
    return (
        on_bus(tap)
        - unacked[("telemetry", "processor")]
        - unacked[("telemetry:urgent", "processor")]
    )


def check_history(up: Up, load: Load, timeout: float) -> dict[str, int]:
    """Every acknowledged reading in history exactly once, live state at each drone's newest
    stored reading; returns the counts."""
    acked = {f"{d}:{s}" for d, s in load.acked}
    with contextlib.suppress(AssertionError):  # what is missing is reported below
        wait_for(lambda: acked <= set(history(up)), timeout=timeout, what="history complete")
    stored = history(up)
    lost = acked - set(stored)
    duplicated = len(stored) - len(set(stored))
    assert not lost, (len(lost), sorted(lost)[:10], len(acked))
    assert duplicated == 0
    newest: dict[str, int] = {}
    for doc_id in stored:
        drone, seq = doc_id.rsplit(":", 1)
        newest[drone] = max(newest.get(drone, 0), int(seq))

    def live_off() -> dict[str, tuple[int | None, int]]:
        items = up.get("/api/v1/drones")["items"]
        now = {d["drone_id"]: d["seq"] for d in items}
        return {k: (now.get(k), v) for k, v in newest.items() if now.get(k) != v}

    with contextlib.suppress(AssertionError):
        wait_for(lambda: not live_off(), timeout=20, what="live state at the newest readings")
    off = live_off()
    assert not off, (len(off), sorted(off.items())[:10])
    return {"acknowledged": len(acked), "lost": len(lost), "duplicated": duplicated,
            "drones_live": len(newest)}  # fmt: skip


# --- overload -----------------------------------------------------------------------------


def test_overload_at_twice_the_sustainable_rate(up_on_one_core: Up, tmp_path: Path) -> None:
    """About twice the sustainable rate for a minute. What the broker acknowledges is stored
    once; the lag of every group is in /metrics and /readyz throughout, the backlog drains
    after, and the dashboard's badge agrees with the lag it reads.

    Where the overload piles up depends on the broker and is measured, not assumed: amqtt
    acknowledges about what SkyHive can take and the rest waits in the devices' outboxes
    (``not_sent_outbox_full``); Mosquitto acknowledges everything and queues it for the
    gateway's session. Either way nothing behind the broker sees that queue: the groups trail
    by a few seconds at most, and the badge (over 3 s, or held back) shows only if they
    cross that. ``badge_seen`` records how often."""
    up = up_on_one_core
    load = Load(
        up.mqtt_port,
        drones=OVERLOAD_DRONES,
        rate=PROBE_RATE,
        min_sleep_s=0.002,
        inflight=1000,
        max_unacked=OUTBOX,
    )
    telemetry_streams = ["telemetry", "telemetry:urgent"]
    with stream_tap(stack_file(up)["redis_url"], telemetry_streams) as bus:
        load.start()
        time.sleep(PROBE_FROM_S)
        before, since = processed(up, bus), time.monotonic()
        time.sleep(PROBE_S - PROBE_FROM_S)
        probe_end, probe_at = processed(up, bus), time.monotonic()
        sustainable = (probe_end - before) / (probe_at - since)
        load.set_rate(2 * sustainable)
        max_unacked: dict[tuple[str, str], float] = {}
        max_lag_s: dict[tuple[str, str], float] = {}
        max_readyz_unacked: dict[tuple[str, str], int] = {}
        seen: list[dict[str, Any] | None] = []  # GET /api/v1/bus, as the dashboard reads it
        readyz: list[tuple[int, Any]] = []
        end = load.started_at + OVERLOAD_S
        while time.monotonic() < end:
            time.sleep(2.0)
            since_probe = (processed(up, bus) - probe_end) / (time.monotonic() - probe_at)
            if since_probe > sustainable:
                sustainable = since_probe
                load.set_rate(2 * sustainable)
            metrics = up.text("/metrics")
            assert plain_value(metrics, "skyhive_bus_up") == 1.0
            unacked = group_series(metrics, "skyhive_bus_group_unacked")
            lag_s = group_series(metrics, "skyhive_bus_group_lag_seconds")
            # Every group of the telemetry streams is exported at every scrape.
            assert unacked.keys() >= TELEMETRY_GROUPS, unacked
            assert lag_s.keys() >= TELEMETRY_GROUPS, lag_s
            for k in TELEMETRY_GROUPS:
                max_unacked[k] = max(max_unacked.get(k, 0.0), unacked[k])
                max_lag_s[k] = max(max_lag_s.get(k, 0.0), lag_s[k])
            assert lost_total(metrics) == 0
            # /readyz: its checks have a 1 s deadline, which a starved core can miss (503
            # naming the check, never the lag), and so can its lag section (then absent).
            status, ready = up.answer("/readyz")
            readyz.append((status, ready))
            if ready and "lag" in ready:
                in_readyz = {(g["stream"], g["group"]): g for g in ready["lag"]["groups"]}
                assert in_readyz.keys() >= TELEMETRY_GROUPS, in_readyz
                for k in TELEMETRY_GROUPS:
                    max_readyz_unacked[k] = max(
                        max_readyz_unacked.get(k, 0), in_readyz[k]["unacked"]
                    )
            seen.append(up.get("/api/v1/bus")["lag"])
        load_end = time.monotonic()
        # What the stack took while the load ran: the readings the gateway put on the bus.
        taken = processed(up, bus)
        load.stop(settle_s=30)
        acked_at = time.monotonic()
        acked = len(load.acked)

        # The backlog drains: whatever the broker still queued is on the bus, and every
        # telemetry group is back at 0, within the bound.
        def drained() -> bool:
            return on_bus(bus) >= acked and not any(telemetry_unacked(up).values())

        with contextlib.suppress(AssertionError):
            wait_for(drained, timeout=DRAIN_BOUND_S, what="backlog drained")
        drained_at = time.monotonic()
    left = telemetry_unacked(up)
    # History with its rollups (a third more of the archiver's and MongoDB's CPU) catches up
    # after the burst.
    counts = check_history(up, load, timeout=90)
    complete_at = time.monotonic()
    after = up.get("/api/v1/bus")["lag"]
    *said, said_after = dashboard_badges([*seen, after])
    badges = [b for b in said if b]
    # The badge agrees with the lag it reads: shown exactly when a group trails by 3 s or
    # more, or ingest is held back.
    for lag, b in zip(seen, said, strict=True):
        assert lag is not None
        behind = lag["held_back"] or max(g["lag_s"] for g in lag["groups"]) >= BEHIND_S
        assert (b is not None) == behind, (lag, b)
    figures = {
        "fault": f"overload 2 x sustainable for {OVERLOAD_S:.0f} s, stack on one CPU",
        "sustainable_rate": round(sustainable),
        "offered": load.offered,
        "offered_rate": round(load.offered / (load.stopped_at - load.started_at)),
        "processed_during_load_rate": round(taken / (load_end - load.started_at)),
        "overload_factor": round(load.offered / max(taken, 1), 2),
        "sent": load.sent,
        "not_sent_outbox_full": load.skipped,
        "acknowledged_rate": round(counts["acknowledged"] / (acked_at - load.started_at)),
        **counts,
        "max_unacked": {f"{s}/{g}": int(v) for (s, g), v in sorted(max_unacked.items())},
        "max_lag_s": {f"{s}/{g}": round(v, 2) for (s, g), v in sorted(max_lag_s.items())},
        "badge_seen": f"{len(badges)}/{len(seen)}",
        "readyz_200": f"{sum(st == 200 for st, _ in readyz)}/{len(readyz)}",
        "readyz_with_lag": f"{sum(bool(b and 'lag' in b) for _, b in readyz)}/{len(readyz)}",
        "last_badge": badges[-1] if badges else None,
        "acks_settled_s": round(acked_at - load_end, 2),
        "drain_s": round(drained_at - load_end, 2),
        # includes reading ~100,000 ids back from MongoDB and live state, several times
        "history_checked_s": round(complete_at - load_end, 2),
        "load_avg": os.getloadavg()[0],
    }
    record_figures(tmp_path, figures)
    assert not any(left.values()), (left, figures)
    # The generator kept its schedule (within 10%) ...
    assert load.sent + load.skipped >= 0.9 * load.offered, figures
    # ... and it was an overload: the stack took well under what was offered.
    assert load.offered >= OVERLOAD_FACTOR * taken, ("not an overload", figures)
    # /readyz carried the lag (nearly) throughout; a 503 never came from the lag alone.
    assert sum(bool(b and "lag" in b) for _, b in readyz) >= 0.8 * len(readyz), figures
    for st, b in readyz:
        assert st == 200 or (b is not None and any(v != "ok" for v in b["checks"].values())), b
    # Both telemetry groups trailed at some point, and /metrics and /readyz both said so.
    for k in (("telemetry", "processor"), ("telemetry", "archiver")):
        assert max_unacked[k] > 0 and max_readyz_unacked[k] > 0, figures
    # Once the backlog is gone the badge is hidden.
    assert said_after is None, (after, said_after)


# --- trimming and backpressure ------------------------------------------------------------


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def archiver_edge(r: Any) -> tuple[tuple[int, int] | None, tuple[int, int] | None, int]:
    """(first entry of the telemetry stream, the archiver's oldest unacknowledged entry,
    stream length): nothing before the latter may have been trimmed."""

    def parse(raw: bytes) -> tuple[int, int]:
        ms, _, seq = raw.decode().partition("-")
        return int(ms), int(seq)

    pipe = r.pipeline(transaction=False)
    pipe.xrange("telemetry", count=1)
    pipe.xinfo_groups("telemetry")
    pipe.xpending("telemetry", "archiver")
    pipe.xlen("telemetry")
    first, groups, pending, length = pipe.execute()
    [group] = [g for g in groups if g["name"] == b"archiver"]
    if pending["pending"]:
        oldest: tuple[int, int] | None = parse(pending["min"])
    else:  # everything delivered was acknowledged: the next entry is the first unacked
        ms, seq = parse(group["last-delivered-id"])
        oldest = (ms, seq + 1)
    return (parse(first[0][0]) if first else None), oldest, int(length)


@pytest.mark.parametrize("up_env", [TRIM_ENV], indirect=True, ids=["cap-1000-limit-800"])
def test_a_frozen_archiver_holds_ingest_back_and_loses_nothing(
    up: Up, up_env: dict[str, str], tmp_path: Path
) -> None:
    [archiver] = role_pids(up.data_dir, ("archiver",))
    r = redis.Redis.from_url(stack_file(up)["redis_url"])
    load = Load(up.mqtt_port, rate=TRIM_RATE)
    load.start()
    time.sleep(FREEZE_AT_S)
    engaged_at = None
    max_length = max_backlog = 0
    trimmed_unprocessed: list[tuple[Any, Any]] = []
    metrics_held = False
    held_lag: dict[str, Any] | None = None  # GET /api/v1/bus while held back
    with frozen(archiver):
        frozen_at = time.monotonic()
        while time.monotonic() - frozen_at < FREEZE_S:
            first, oldest, length = archiver_edge(r)
            max_length = max(max_length, length)
            if first is not None and oldest is not None and first > oldest:
                trimmed_unprocessed.append((first, oldest))
            lag = up.get("/api/v1/bus")["lag"]
            max_backlog = max(max_backlog, lag["backlog"])
            if lag["held_back"] and engaged_at is None:
                engaged_at = time.monotonic()
                held_lag = lag
            if engaged_at is not None and not metrics_held:
                metrics_held = plain_value(up.text("/metrics"), "skyhive_ingest_held_back") == 1
            time.sleep(0.3)
        acked_while_frozen = len(load.acked)
        still_held = up.get("/api/v1/bus")["lag"]["held_back"]
        status, ready = up.answer("/readyz")
    thawed_at = time.monotonic()
    wait_for(lambda: not up.get("/api/v1/bus")["lag"]["held_back"], timeout=30,
             what="backpressure released")  # fmt: skip
    released_at = time.monotonic()
    released_lag = up.get("/api/v1/bus")["lag"]
    time.sleep(2.0)  # ingest flows again after the release
    load.stop()
    counts = check_history(up, load, timeout=45)
    said_held, said_released = dashboard_badges([held_lag, released_lag])
    metrics = up.text("/metrics")
    episodes = {
        edge: float(m.group(1))
        for edge in ("started", "ended")
        if (m := re.search(rf'^skyhive_ingest_backpressure_transitions_total\{{edge="{edge}"\}} (\S+)$',
                           metrics, re.M))
    }  # fmt: skip
    figures = {
        "fault": f"archiver frozen {FREEZE_S:.0f} s, cap 1000, limit 800/300",
        "sent": load.sent,
        **counts,
        "held_back_after_s": round(engaged_at - frozen_at, 2) if engaged_at else None,
        "max_backlog": max_backlog,
        "max_stream_length": max_length,
        "trimmed_unprocessed": len(trimmed_unprocessed),
        "bus_lost": lost_total(metrics),
        "deadletters": plain_value(metrics, "skyhive_deadletters"),
        "released_after_thaw_s": round(released_at - thawed_at, 2),
        "acked_while_frozen": acked_while_frozen,
        "episodes": episodes,
        "badge_while_held": said_held,
    }
    record_figures(tmp_path, figures)
    assert not trimmed_unprocessed, (trimmed_unprocessed[:3], figures)
    assert lost_total(metrics) == 0, figures
    assert plain_value(metrics, "skyhive_deadletters") == 0, figures
    # The stream stopped at the limit (800), under the cap, which never had to act.
    assert max_length <= 800, figures
    assert engaged_at is not None, figures
    assert still_held, figures  # held back for as long as the archiver stayed frozen
    # Visible: /metrics, /readyz (still 200: the instance serves the dashboard that shows
    # it) and the dashboard's badge.
    assert metrics_held, figures
    assert status == 200 and ready["lag"]["held_back"], ready
    assert said_held is not None and said_held.startswith("Ingest held back"), figures
    assert episodes.get("started", 0) >= 1 and episodes.get("ended", 0) >= 1, figures
    assert plain_value(metrics, "skyhive_ingest_held_back") == 0, figures
    assert released_at - thawed_at < 20, figures
    assert said_released is None or said_released.startswith("Ingest behind"), said_released
