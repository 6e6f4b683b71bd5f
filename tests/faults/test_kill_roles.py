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

from e2e.harness import Up, wait_for
from faults.conftest import history, record_figures, role_pids
from faults.load import Load

pytestmark = pytest.mark.e2e

LOAD_S = 12.0
KILL_AT_S = 4.0
ROLES = {
    "gateway": ("gateway",),
    "processor-routine": ("processor", "--lane", "routine"),
    "processor-urgent": ("processor", "--lane", "urgent"),
    "archiver": ("archiver",),
}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_killed_role_loses_and_duplicates_nothing(up: Up, role: str, tmp_path: Path) -> None:
    argv = ROLES[role]
    [victim] = role_pids(up.data_dir, argv)
    load = Load(up.mqtt_port)
    load.start()
    time.sleep(KILL_AT_S)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)

    def restarted() -> bool:
        pids = role_pids(up.data_dir, argv)
        return bool(pids) and victim not in pids

    wait_for(restarted, timeout=15, what=f"{role} restarted")
    restarted_at = time.monotonic()
    before = len(history(up))
    wait_for(lambda: len(history(up)) > before, timeout=20, what="history growing again")
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
        "fault": f"kill -9 {role}",
        "sent": load.sent,
        "acknowledged": len(acked),
        "lost": len(lost),
        "duplicated": len(stored) - len(set(stored)),
        "restart_s": round(restarted_at - killed_at, 2),
        "resume_after_restart_s": round(resumed_at - restarted_at, 2),
        "drones_live": len(live),
    }
    record_figures(tmp_path, figures)
    assert resumed_at - restarted_at < 10, figures
