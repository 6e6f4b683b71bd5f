"""One stream model on the telemetry stream (the ``models`` role runs one per enabled model).

Each model reads the stream in a consumer group of its own, ``model-<name>``, beside the
processor's and the archiver's: a slow model delays nothing else, and every model sees every
reading. Per batch: decode (invalid entries are skipped: the processor dead-letters them),
restore the state of drones this process has not seen yet (``ModelStates``), drop readings
the model has seen already (each drone's last event time and seq is kept with its state, so a
replay after a crash is not learnt twice), hand the rest to the model in event-time order,
fold its findings into the alerts through the alerting engine (``services/alerting.py``:
deduplicated, one active alert per drone and type, ids derived from the reading that opened
it), and only then acknowledge. Findings the engine could not write are kept and written
first when the batch is read again.

Every ``save_every_s`` (and on a clean stop) the state of each drone heard since is saved and
the counters reported (``ModelStats``). A ``kill -9`` loses what the model learnt since the
last save: the readings it acknowledged meanwhile are not read again (their alerts were
written). Per-drone state needs one member per drone: one ``models`` process, or one per
bus partition (``SKYHIVE_BUS_PARTITIONS``), where a drone's readings stay in one partition.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from skyhive.domain.backpressure import ADVISORY_GROUP_PREFIX
from skyhive.domain.stream_models import DroneFinding, StreamModel
from skyhive.domain.telemetry import InvalidTelemetry, Telemetry, parse_telemetry
from skyhive.ports.bus import Bus, BusMessage
from skyhive.ports.clock import Clock
from skyhive.ports.stream_model import ModelCounts, ModelStates, ModelStats, SavedDrone
from skyhive.services.alerting import AlertEngine
from skyhive.services.group_consumer import GroupConsumer
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings

log = logging.getLogger(__name__)

GROUP_PREFIX = ADVISORY_GROUP_PREFIX  # never holds the stream (the trimmer skips it)


def group_of(model: str) -> str:
    """The consumer group a model reads the telemetry stream in."""
    return GROUP_PREFIX + model


@dataclass(slots=True)
class Batch:
    """What one batch did (``counts`` also adds up between reports)."""

    read: int = 0
    invalid: int = 0
    seen_before: int = 0
    observed: int = 0
    findings: int = 0  # with a severity: a condition holds
    alert_changes: int = 0


class ModelRunner:
    def __init__(
        self,
        settings: Settings,
        model: StreamModel,
        *,
        bus: Bus,
        engine: AlertEngine,
        specs: SpecCache,
        states: ModelStates,
        stats: ModelStats,
        clock: Clock,
        consumer: str,
    ) -> None:
        """``specs``: a registry cache someone keeps fresh (missing specs are read on the
        way)."""
        self.model = model
        self.name = model.name
        self.consumer = consumer
        self._s = settings
        self._engine = engine
        self._specs = specs
        self._states = states
        self._stats = stats
        self._clock = clock
        cfg = settings.models
        self.batch_size = cfg.batch_size
        self._save_every_s = cfg.save_every_s
        self._group = GroupConsumer(
            bus,
            settings.telemetry_stream,
            group_of(model.name),
            consumer,
            cfg.batch_size,
            settings.processor_block_ms,
            settings.claim_idle_ms,
            clock,
            keep_claimed=True,  # a batch waiting on a slow alert write is not taken over
        )
        self._seen: dict[str, tuple[int, int]] = {}  # drone → last (ts ms, seq) observed
        self._heard: set[str] = set()  # drones observed since the last save
        self._unsent: list[DroneFinding] = []  # found, not written yet (a failed write)
        self._next_save = clock.monotonic() + self._save_every_s
        self.totals = Batch()
        self._counts: Counter[str] = Counter()  # since the last report

    def setup(self) -> None:
        self._group.setup()

    def poll(self) -> int:
        """One batch (entries of a dead member first), then the save when it is due;
        returns the batch's size."""
        n = self._group.poll(self.process)
        if self._clock.monotonic() >= self._next_save:
            self.save()
        return n

    def process(self, msgs: list[BusMessage]) -> Batch:
        b = Batch(read=len(msgs))
        readings: list[Telemetry] = []
        for m in msgs:
            try:
                readings.append(parse_telemetry(m.value, max_bytes=self._s.max_message_bytes * 2))
            except InvalidTelemetry:
                b.invalid += 1
        drones = sorted({t.drone_id for t in readings})
        self._restore([d for d in drones if d not in self._seen])
        specs = self._specs.get_many(drones)
        fresh = self._fresh(readings)
        b.seen_before = len(readings) - len(fresh)
        b.observed = len(fresh)
        if fresh:
            found = self.model.observe(fresh, specs)
            b.findings = sum(f.severity is not None for _, f in found)
            self._unsent += found
        if self._unsent:
            b.alert_changes = len(self._engine.apply(self._unsent))
            self._unsent = []
        self._add(b)
        return b

    def _restore(self, drones: list[str]) -> None:
        """Hand the model the saved state of drones new to this process."""
        saved = self._states.load(self.name, drones) if drones else {}
        for d, s in saved.items():
            if s.state is not None:
                self.model.restore(d, s.state)
            self._seen[d] = s.seen
        for d in drones:
            self._seen.setdefault(d, (-1, -1))

    def _fresh(self, readings: list[Telemetry]) -> list[Telemetry]:
        """The readings newer than the last one observed of their drone, oldest first;
        each drone's mark moves to its newest."""
        out = []
        for t in sorted(readings, key=lambda t: (t.ts_ms, t.seq)):
            if t.newer_than(*self._seen[t.drone_id]):
                self._seen[t.drone_id] = (t.ts_ms, t.seq)
                self._heard.add(t.drone_id)
                out.append(t)
        return out

    def save(self) -> None:
        """Save the state of the drones heard since the last save; report the counters."""
        self._next_save = self._clock.monotonic() + self._save_every_s
        heard, self._heard = self._heard, set()
        try:
            if heard:
                drones = {d: SavedDrone(self._seen[d], self.model.state(d)) for d in heard}
                self._states.save(self.name, drones, self._clock.now())
        except Exception:
            self._heard |= heard  # saved with the next round
            raise
        counts, self._counts = self._counts, Counter()
        try:
            self._stats.report(self.name, ModelCounts(dict(counts), dict(self.model.metrics())))
        except Exception:
            self._counts += counts
            raise

    def close(self) -> None:
        """On the way out: save (if the servers answer; else the last save stands)."""
        try:
            self.save()
        except Exception as exc:
            log.warning("model %s: state not saved on the way out: %s", self.name, exc)

    def status(self) -> str:
        t = self.totals
        return (
            f"{t.observed} readings observed, {t.seen_before} seen before, {t.invalid} "
            f"invalid, {t.findings} findings, {t.alert_changes} alert changes"
        )

    def _add(self, b: Batch) -> None:
        for name in Batch.__slots__:
            n = getattr(b, name)
            setattr(self.totals, name, getattr(self.totals, name) + n)
            self._counts[name] += n
