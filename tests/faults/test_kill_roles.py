"""Fault injection under load: `skyhive up` takes a steady QoS 1 load while one of its
processes is killed with SIGKILL; every reading the broker acknowledged must end up in
history exactly once, live state must show each drone's newest reading, and processing must
resume within seconds of the restart the supervisor makes.

Bounded: about 25 s per case on two cores. The figures (lost, duplicated, resume time) are
printed and appended to ``<tmp>/fault-figures.jsonl`` for docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from pymongo.errors import PyMongoError

from e2e.harness import Up, role_pids, server_markers, server_pid, wait_for
from faults.conftest import history, record_figures
from faults.load import Load

pytestmark = pytest.mark.e2e

LOAD_S = 14.0
KILL_AT_S = 4.0
RESUME_S = 5.0  # the bound: processing resumed within 5 s of the restart
# Roles by their `skyhive` arguments; embedded servers by name (e2e.harness.server_markers).
ROLES = {
    "gateway": ("gateway",),
    "processor-routine": ("processor", "--lane", "routine"),
    "processor-urgent": ("processor", "--lane", "urgent"),
    "archiver": ("archiver",),
}
SERVERS = {"redis-server": "redis", "mongodb-wire-server": "mongodb"}


def victim_pid(up: Up, victim: str) -> int | None:
    """The live process of a role or a server (None while there is none)."""
    if victim in ROLES:
        pids = role_pids(up.data_dir, ROLES[victim])
        return pids[0] if len(pids) == 1 else None
    try:
        return server_pid(*server_markers(up, SERVERS[victim]))
    except AssertionError:  # none, or the old one not yet reaped
        return None


def newest_seqs(up: Up) -> tuple[int, int]:
    """The newest seq of the load in live state and in history (0 while unreadable)."""
    try:
        live = max((d["seq"] for d in up.get("/api/v1/drones")["items"]), default=0)
    except OSError:
        live = 0
    try:
        stored = max((int(i.rsplit(":", 1)[1]) for i in history(up)), default=0)
    except PyMongoError:
        stored = 0
    return live, stored


@pytest.mark.parametrize("victim", sorted(ROLES) + sorted(SERVERS))
def test_a_killed_process_loses_and_duplicates_nothing(up: Up, victim: str, tmp_path: Path) -> None:
    """SIGKILL of a role or an embedded server 4 s into a steady load: the supervisor restarts
    it, and readings published after the restart reach live state and history within
    RESUME_S."""
    pid = victim_pid(up, victim)
    assert pid is not None
    load = Load(up.mqtt_port)
    load.start()
    time.sleep(KILL_AT_S)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        new = victim_pid(up, victim)
        return new is not None and new != pid

    wait_for(restarted, timeout=20, what=f"{victim} restarted")
    restarted_at = time.monotonic()
    mark = load.sent // load.drones + 1  # a seq not yet published at the restart

    def resumed() -> bool:
        live, stored = newest_seqs(up)
        return live > mark and stored > mark

    wait_for(resumed, timeout=30, what="live state and history moving past the restart")
    resumed_at = time.monotonic()
    time.sleep(max(0.0, LOAD_S - (resumed_at - killed_at) - KILL_AT_S))
    load.stop()
    acked = {f"{d}:{s}" for d, s in load.acked}
    assert len(acked) > 0.9 * load.sent, (len(acked), load.sent)

    def complete() -> bool:
        return acked <= set(history(up))

    with contextlib.suppress(AssertionError):  # what is missing is reported below
        wait_for(complete, timeout=45, what="every acknowledged reading in history")
    stored = history(up)
    assert len(stored) == len(set(stored))  # exactly once (the id is the reading's)
    # Live state: each drone at its newest stored reading.
    newest: dict[str, int] = {}
    for doc_id in stored:
        drone, seq = doc_id.rsplit(":", 1)
        newest[drone] = max(newest.get(drone, 0), int(seq))
    live = {d["drone_id"]: d["seq"] for d in up.get("/api/v1/drones")["items"]}
    lost = acked - set(stored)
    assert not lost, (len(lost), sorted(lost)[:10], len(acked))

    def live_off() -> dict[str, tuple[int | None, int]]:
        now = {d["drone_id"]: d["seq"] for d in up.get("/api/v1/drones")["items"]}
        return {k: (now.get(k), v) for k, v in newest.items() if now.get(k) != v}

    with contextlib.suppress(AssertionError):
        wait_for(lambda: not live_off(), timeout=20, what="live state at the newest readings")
    assert not live_off(), live_off()
    figures = {
        "fault": f"kill -9 {victim}",
        "sent": load.sent,
        "acknowledged": len(acked),
        "lost": len(lost),
        "duplicated": len(stored) - len(set(stored)),
        "restart_s": round(restarted_at - killed_at, 2),
        "resume_after_restart_s": round(resumed_at - restarted_at, 2),
        "drones_live": len(live),
    }
    record_figures(tmp_path, figures)
    assert resumed_at - restarted_at < RESUME_S, figures
