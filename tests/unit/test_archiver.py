"""The archiver on in-memory ports: it holds a bucket until its drone moves on (or the hold
ends, or the stream is idle), acknowledges entries only after their bucket was written, and
dead-letters what the store refuses with the store's reason."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import pytest
from memory_ports import DeadLetterList, MemoryBus

from manual_clock import ManualClock
from skyhive.domain.history import Bucket
from skyhive.services.archiver import Archiver
from skyhive.settings import Settings

BASE_MS = int(datetime(2026, 11, 23, 12, tzinfo=UTC).timestamp() * 1000)
STREAM = "telemetry"


class Registered:
    def __init__(self, *ids: str) -> None:
        self._ids = set(ids)

    def registered(self, drone_ids: Sequence[str]) -> dict[str, bool]:
        return {d: d in self._ids for d in drone_ids}


class History:
    """Buckets written, by id; refuses readings whose ``extra`` holds ``refuse``."""

    def __init__(self) -> None:
        self.writes: list[Bucket] = []
        self.readings: dict[str, dict[int, bool]] = {}

    def store(self, buckets: Sequence[Bucket]) -> dict[tuple[str, int], str]:
        refused = {}
        for b in buckets:
            self.writes.append(b)
            for seq, t in b.readings.items():
                if (t.model_extra or {}).get("refuse"):
                    refused[(b.drone_id, seq)] = "no thanks"
                else:
                    self.readings.setdefault(b.id, {})[seq] = seq in b.unregistered
        return refused


class Rollups:
    """The minutes the archiver marks pending: only after their buckets were written."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.noted: list[str] = []

    def note(self, buckets: Sequence[Bucket]) -> None:
        assert all(b in self.history.writes for b in buckets)
        self.noted.extend(b.id for b in buckets)

    def roll_due(self, force: bool = False, idle: bool = False) -> int:
        return 0


def body(drone: str, seq: int, at_s: float, **extra: object) -> bytes:
    return orjson.dumps(
        {"drone_id": drone, "seq": seq, "ts": BASE_MS + int(at_s * 1000), "battery_pct": 50} | extra
    )


def make(hold_s: float = 5.0) -> tuple[Archiver, MemoryBus, History, DeadLetterList, ManualClock]:
    bus, history, dead, clock = MemoryBus(), History(), DeadLetterList(), ManualClock()
    settings = Settings(archiver_hold_s=hold_s, claim_idle_ms=3000)
    a = Archiver(settings, bus, Registered("a"), history, dead, Rollups(history), "c", clock)  # type: ignore[arg-type]
    a.setup()
    return a, bus, history, dead, clock


def test_a_bucket_is_written_whole_once_its_drone_moves_on_and_only_then_acknowledged() -> None:
    a, bus, history, _, clock = make()
    bus.publish(STREAM, [("a", body("a", s, s)) for s in range(5)])  # bucket 12:00:00
    assert a.poll() == 5
    assert history.writes == [] and bus.acked == [] and a.held == 5
    clock.advance(1)
    bus.publish(STREAM, [("a", body("a", 5, 5.0))])  # the next bucket: the first is complete
    a.poll()
    [written] = history.writes
    assert sorted(written.readings) == [0, 1, 2, 3, 4]
    assert sorted(bus.acked) == ["1-0", "2-0", "3-0", "4-0", "5-0"] and a.held == 1
    assert a.poll() == 0  # idle: everything held is written
    assert len(history.writes) == 2 and bus.pending[STREAM] == set() and a.held == 0


def test_the_hold_bounds_the_wait_and_held_entries_are_claimed_again() -> None:
    a, bus, history, _, clock = make(hold_s=2.0)
    bus.publish(STREAM, [("a", body("a", 1, 0))])
    a.poll()
    bus.publish(STREAM, [("b", body("b", 1, 0.5))])
    clock.advance(1.5)
    a.poll()
    assert history.writes == [] and bus.kept == [["1-0"]]  # held over claim_idle / 3
    bus.publish(STREAM, [("b", body("b", 2, 1))])
    clock.advance(0.6)
    a.poll()  # a's bucket held 2.1 s: written; b's 0.6 s: held
    assert [b.drone_id for b in history.writes] == ["a"] and bus.acked == ["1-0"]


def test_hold_zero_writes_each_batch_at_once() -> None:
    a, bus, history, _, _ = make(hold_s=0)
    bus.publish(STREAM, [("a", body("a", 1, 0)), ("a", body("a", 2, 1))])
    a.poll()
    [b] = history.writes
    assert sorted(b.readings) == [1, 2] and sorted(bus.acked) == ["1-0", "2-0"]


def test_refused_readings_are_dead_lettered_with_the_reason_and_the_rest_stored() -> None:
    a, bus, history, dead, _ = make()
    bus.publish(
        STREAM,
        [
            ("a", body("a", 1, 0)),
            ("a", body("a", 2, 1, refuse=True)),
            ("x", body("x", 1, 0)),  # not registered: stored, flagged
            ("a", b"not json"),  # the processor's to dead-letter
        ],
    )
    while a.poll():
        pass
    assert [(d.reason, orjson.loads(d.raw)["seq"], d.source) for d in dead.letters] == [
        ("history write refused: no thanks", 2, "archiver")
    ]
    assert history.readings == {
        "a:2026-11-23T12:00:00Z": {1: False},
        "x:2026-11-23T12:00:00Z": {1: True},
    }
    assert bus.pending[STREAM] == set() and len(bus.acked) == 4


class Failing(History):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def store(self, buckets: Sequence[Bucket]) -> dict[tuple[str, int], str]:
        if self.down:
            raise ConnectionError("MongoDB is down")
        return super().store(buckets)


def test_a_failed_write_keeps_everything_held_and_unacknowledged() -> None:
    bus, history, clock = MemoryBus(), Failing(), ManualClock()
    settings = Settings(archiver_hold_s=0)
    a = Archiver(
        settings, bus, Registered("a"), history, DeadLetterList(), Rollups(history), "c", clock
    )  # type: ignore[arg-type]
    bus.publish(STREAM, [("a", body("a", 1, 0))])
    with pytest.raises(ConnectionError):
        a.poll()
    assert a.held == 1 and bus.acked == [] and bus.pending[STREAM] == {"1-0"}
    history.down = False
    assert a.poll() == 0
    assert history.readings == {"a:2026-11-23T12:00:00Z": {1: False}} and bus.acked == ["1-0"]
