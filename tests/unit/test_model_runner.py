"""The model runner on in-memory ports, with a plug-in as small as a third party's: findings
become alerts once, the batch is acknowledged only after they are written (and a failed
write is retried without losing them), readings seen before are not observed again, and a
drone's saved state is handed back to a new process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from memory_ports import (
    Announced,
    MemoryActiveAlerts,
    MemoryAlertStore,
    MemoryBus,
    MemoryGrounding,
    Registry,
    Stations,
)

from manual_clock import ManualClock
from skyhive.domain.alert_lifecycle import AlertUpdate
from skyhive.domain.alert_rules import Finding
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.stream_models import DroneFinding
from skyhive.domain.telemetry import Telemetry
from skyhive.ports.stream_model import ModelCounts, SavedDrone
from skyhive.services.alerting import AlertEngine
from skyhive.services.model_runner import ModelRunner
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings

T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


class Sagging:
    """A model as a third party writes one: an ``anomaly`` while the battery is under 20 %,
    remembering how many readings of each drone it saw."""

    name = "sagging"

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.limit = float(options.get("limit", 20.0))
        self.seen: dict[str, int] = {}
        self.observed: list[Telemetry] = []

    def observe(
        self, readings: Sequence[Telemetry], specs: Mapping[str, DroneSpec]
    ) -> list[DroneFinding]:
        self.observed += readings
        out = []
        for t in readings:
            self.seen[t.drone_id] = self.seen.get(t.drone_id, 0) + 1
            if t.battery_pct < self.limit:
                out.append(
                    (t.drone_id, Finding("anomaly", "warning", t.ts, {"pct": t.battery_pct}))
                )
        return out

    def metrics(self) -> Mapping[str, float]:
        return {"drones": float(len(self.seen))}

    def state(self, drone_id: str) -> dict[str, Any] | None:
        return {"seen": self.seen[drone_id]}

    def restore(self, drone_id: str, state: Mapping[str, Any]) -> None:
        self.seen[drone_id] = int(state["seen"])


class States:
    def __init__(self) -> None:
        self.saved: dict[tuple[str, str], SavedDrone] = {}

    def load(self, model: str, drone_ids: Sequence[str]) -> dict[str, SavedDrone]:
        return {d: s for d in drone_ids if (s := self.saved.get((model, d))) is not None}

    def save(self, model: str, drones: Mapping[str, SavedDrone], at: datetime) -> None:
        self.saved |= {(model, d): s for d, s in drones.items()}


class Stats:
    def __init__(self) -> None:
        self.reports: list[ModelCounts] = []

    def report(self, model: str, stats: ModelCounts) -> None:
        self.reports.append(stats)

    def read(self, models: Sequence[str]) -> dict[str, ModelCounts]:
        return {}


class FailingOnce(MemoryAlertStore):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def apply(self, updates: Sequence[AlertUpdate]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("MongoDB away")
        super().apply(updates)


class World:
    def __init__(self, store: MemoryAlertStore | None = None) -> None:
        self.settings = Settings()
        self.clock = ManualClock(T0)
        self.bus = MemoryBus()
        self.store = store or MemoryAlertStore()
        self.engine = AlertEngine(
            self.settings, active=MemoryActiveAlerts(), store=self.store, feed=Announced(),
            bus=self.bus, stations=Stations(), grounding=MemoryGrounding(), clock=self.clock,
        )  # fmt: skip
        self.states = States()
        self.stats = Stats()

    def runner(self, consumer: str = "m1") -> ModelRunner:
        return ModelRunner(
            self.settings, Sagging({}), bus=self.bus, engine=self.engine,
            specs=SpecCache(Registry(), self.clock), states=self.states, stats=self.stats,
            clock=self.clock, consumer=consumer,
        )  # fmt: skip

    def publish(self, *readings: tuple[str, int, float], raw: Sequence[bytes] = ()) -> None:
        """(drone, second after T0, battery %) readings, and raw entries."""
        items = [
            (d, orjson.dumps({"drone_id": d, "seq": s, "ts": _ms(s), "battery_pct": b}))
            for d, s, b in readings
        ]
        self.bus.publish(self.settings.telemetry_stream, items + [("x", r) for r in raw])

    @property
    def pending(self) -> set[str]:
        return self.bus.pending[self.settings.telemetry_stream]


def _ms(second: int) -> int:
    return int((T0 + timedelta(seconds=second)).timestamp() * 1000)


def test_findings_become_one_alert_and_the_batch_is_acknowledged() -> None:
    w = World()
    r = w.runner()
    w.publish(("d1", 1, 50.0), ("d1", 2, 19.0), ("d1", 3, 18.0), ("d2", 1, 80.0), raw=[b"{"])
    assert r.poll() == 5
    (alert,) = w.store.list()
    assert (alert.drone_id, alert.type, alert.count) == ("d1", "anomaly", 2)
    assert alert.opened_at == T0 + timedelta(seconds=2)
    assert w.pending == set() and len(w.bus.acked) == 5
    assert (r.totals.observed, r.totals.invalid, r.totals.findings) == (4, 1, 2)


def test_a_failed_alert_write_keeps_the_batch_pending_and_its_findings_for_the_retry() -> None:
    w = World(FailingOnce())
    r = w.runner()
    w.publish(("d1", 1, 19.0), ("d1", 2, 18.0))
    with pytest.raises(ConnectionError):
        r.poll()
    assert len(w.pending) == 2 and w.store.list() == []
    assert r.poll() == 2  # the same entries again: seen, but their findings were kept
    (alert,) = w.store.list()
    assert alert.count == 2 and w.pending == set()


def test_readings_seen_before_or_older_are_not_observed_again() -> None:
    w = World()
    r = w.runner()
    w.publish(("d1", 5, 60.0), ("d1", 6, 60.0))
    r.poll()
    w.publish(("d1", 6, 60.0), ("d1", 4, 60.0), ("d1", 7, 60.0))  # a replay, a late one, a new
    r.poll()
    assert [t.seq for t in r.model.observed] == [5, 6, 7]  # type: ignore[attr-defined]
    assert r.totals.seen_before == 2


def test_a_new_process_takes_up_each_drones_saved_state() -> None:
    w = World()
    first = w.runner("m1")
    w.publish(("d1", 1, 60.0), ("d1", 2, 60.0))
    first.poll()
    first.close()
    assert w.states.saved[("sagging", "d1")] == SavedDrone((_ms(2), 2), {"seen": 2})
    assert w.stats.reports[-1] == ModelCounts(
        {
            "read": 2,
            "invalid": 0,
            "seen_before": 0,
            "observed": 2,
            "findings": 0,
            "alert_changes": 0,
        },
        {"drones": 1.0},
    )

    second = w.runner("m2")
    w.publish(("d1", 2, 60.0), ("d1", 3, 60.0))  # the last saved one again, and a new one
    second.poll()
    assert second.model.seen == {"d1": 3}  # type: ignore[attr-defined]
    assert second.totals.seen_before == 1


def test_the_state_is_saved_when_due_and_again_if_the_save_failed() -> None:
    w = World()
    r = w.runner()
    w.publish(("d1", 1, 60.0))
    r.poll()
    assert w.states.saved == {}  # not due yet
    w.clock.advance(w.settings.models.save_every_s)
    saves = w.states.save

    def down(model: str, drones: Mapping[str, SavedDrone], at: datetime) -> None:
        raise ConnectionError("MongoDB away")

    w.states.save = down  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        r.poll()
    w.states.save = saves  # type: ignore[method-assign]
    r.save()
    assert w.states.saved[("sagging", "d1")].seen == (_ms(1), 1)
