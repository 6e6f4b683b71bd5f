"""Stream models benchmark: readings per second through each model, in this process, no
servers.

The simulator's drones (``simulator/drone.py``: climbs, cruise, descents, charging) report at
1 Hz from a fixed start; every batch of their readings (one simulated second of the whole
fleet, as the ``models`` role takes them from the bus) is encoded as the bus holds it, then
timed: decoding (``parse_telemetry``, which the role does once per model) and each enabled
model's ``observe``. Flight simulation is not timed. :class:`Flights` is also what the
models' tests fly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from skyhive.domain.stream_models import FLYING
from skyhive.domain.telemetry import Telemetry, parse_telemetry, validate_telemetry
from skyhive.models.config import ModelsConfig
from skyhive.models.plugins import load_enabled
from skyhive.services.ingest import encode_for_bus
from skyhive.simulator.drone import SimDrone, make_fleet

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: every run flies the same flights


@dataclass
class Flights:
    """A seeded fleet and its clock; :meth:`fly` moves it on and returns its readings."""

    drones: list[SimDrone]
    rng: random.Random
    now_ms: int = T0_MS
    readings: list[Telemetry] = field(default_factory=list)
    keep: bool = True  # keep every reading in ``readings`` (tests); a benchmark does not

    @classmethod
    def of(cls, count: int, seed: int, prefix: str = "drone", keep: bool = True) -> Flights:
        rng = random.Random(seed)
        return cls(make_fleet(count, T0_MS, rng, id_prefix=prefix), rng, keep=keep)

    def fly(self, seconds: float, step_s: float = 1.0) -> list[Telemetry]:
        out = []
        for _ in range(int(seconds / step_s)):
            self.now_ms += int(step_s * 1000)
            for d in self.drones:
                d.step(self.now_ms, step_s, self.rng)
                out.append(validate_telemetry(d.reading(self.now_ms)))
        if self.keep:
            self.readings += out
        return out


@dataclass
class ModelRun:
    model: str
    seconds: float  # in observe
    readings_per_s: float
    us_per_reading: float
    findings: int


@dataclass
class ModelsReport:
    drones: int
    minutes: float
    readings: int
    flying_share: float
    decode_per_s: float
    runs: list[ModelRun] = field(default_factory=list)


def run_models_bench(
    drones: int,
    minutes: float,
    config: ModelsConfig,
    seed: int = 1,
    progress: Callable[[str], None] = lambda _: None,
) -> ModelsReport:
    models = load_enabled(config)
    flights = Flights.of(drones, seed, prefix="bench", keep=False)
    specs = {d.drone_id: d.spec for d in flights.drones}
    spent = dict.fromkeys((m.name for m in models), 0.0)
    found = dict.fromkeys(spent, 0)
    decode_s = 0.0
    readings = flying = 0
    seconds = int(minutes * 60)
    for second in range(seconds):
        encoded = [encode_for_bus(t) for t in flights.fly(1.0)]
        started = time.perf_counter()
        batch = [parse_telemetry(raw) for raw in encoded]
        decode_s += time.perf_counter() - started
        for m in models:
            started = time.perf_counter()
            found[m.name] += sum(f.severity is not None for _, f in m.observe(batch, specs))
            spent[m.name] += time.perf_counter() - started
        readings += len(batch)
        flying += sum(t.status in FLYING for t in batch)
        if second % 300 == 299:
            progress(f"{second + 1} of {seconds} simulated seconds, {readings} readings")
    report = ModelsReport(
        drones, minutes, readings, round(flying / readings, 3) if readings else 0.0,
        _rate(readings, decode_s),
    )  # fmt: skip
    for name, s in spent.items():
        per = s / readings * 1e6 if readings else 0.0
        report.runs.append(
            ModelRun(name, round(s, 3), _rate(readings, s), round(per, 2), found[name])
        )
    return report


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds) if seconds > 0 else 0.0
