"""CPU time per process from /proc, so a benchmark can say what each process costs per 1,000
readings: a figure comparable across machines and loads, unlike a throughput ceiling."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds ``pid`` has used (its threads included); None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces, hence the last parenthesis):
    # state is field 3, utime and stime fields 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


class CpuMeter:
    """CPU seconds each named process spends between :meth:`start` and :meth:`stop`."""

    def __init__(self, processes: Mapping[str, int]) -> None:
        self._pids = dict(processes)
        self._start: dict[str, float] = {}
        self._used: dict[str, float] = {}

    def start(self) -> None:
        self._start = {n: s for n, p in self._pids.items() if (s := cpu_seconds(p)) is not None}

    def stop(self) -> dict[str, float]:
        """CPU seconds per process over the measured span (a process gone meanwhile is left
        out: its last figure is unknowable from /proc)."""
        self._used = {}
        for name, began in self._start.items():
            now = cpu_seconds(self._pids[name])
            if now is not None:
                self._used[name] = round(now - began, 2)
        return dict(self._used)

    def per_thousand(self, readings: int) -> dict[str, float]:
        """CPU milliseconds per 1,000 readings, per process (after :meth:`stop`)."""
        if readings <= 0:
            return {}
        return {n: per_thousand(s, readings) for n, s in self._used.items()}


LOAD_GENERATOR = "load generator"  # names starting so are the benchmark's load, not the stack


def per_thousand(cpu_s: float, count: int) -> float:
    """CPU milliseconds per 1,000 of ``count`` (readings, requests) for ``cpu_s`` seconds."""
    return round(cpu_s * 1e6 / count, 1) if count > 0 else 0.0


def stack_total(costs: Mapping[str, float]) -> float:
    """The system under test's CPU per 1,000: every process but the load generators."""
    return round(sum(v for n, v in costs.items() if not n.startswith(LOAD_GENERATOR)), 1)
