"""What `skyhive up` supervises, in ``/metrics``: restarts and whether each process is up.

The supervisor is another process, so it cannot share counters with the API: it writes
``<data dir>/run/supervisor.json`` whenever something changes (skyhive/supervisor.py), and this
collector reads it at each scrape. Without a running `skyhive up` (servers and roles run some
other way) the series are simply absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from skyhive.supervisor import read_supervision

_LABELS = ("process", "kind")


class SupervisionCollector(Collector):
    """Reads the supervision file of ``data_dir`` (the latest app's, when tests build many)."""

    def __init__(self) -> None:
        self.data_dir: Path | None = None

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "skyhive_supervisor_restarts",
            "Times `skyhive up` restarted a process (kind: server or role) since it started.",
            labels=_LABELS,
        )
        up = GaugeMetricFamily(
            "skyhive_supervisor_process_up",
            "1 while a process `skyhive up` supervises runs, 0 while it is down or restarting.",
            labels=_LABELS,
        )
        procs = read_supervision(self.data_dir) if self.data_dir is not None else {}
        for name, p in sorted(procs.items()):
            labels = [str(name), str(p.get("kind", "?"))]
            restarts.add_metric(labels, float(p.get("restarts", 0)))
            up.add_metric(labels, 1.0 if p.get("up") else 0.0)
        yield restarts
        yield up


_COLLECTOR = SupervisionCollector()
_registered = False


def install_supervision_metrics(data_dir: Path) -> None:
    """Expose the supervision of ``data_dir`` in this process's ``/metrics`` (the default
    registry; the collector is registered once, later calls only point it elsewhere)."""
    global _registered
    _COLLECTOR.data_dir = data_dir
    if not _registered:
        REGISTRY.register(_COLLECTOR)
        _registered = True
