"""Drone rollups kept up by the archiver (``domain/rollups.py``, ``adapters/rollups_repo.py``).

The archiver tells :meth:`DroneRollups.note` which buckets it wrote, before it acknowledges
their readings: their minutes are marked pending in MongoDB (once per open minute per
process; every time for a minute already closed, which is a late reading). A pass
(:meth:`DroneRollups.roll_due`, every ``ROLL_EVERY_S``) sums up the pending minutes that
closed (their end plus the archiver's hold is past, so their buckets are written; while the
archiver works through a backlog, past on its clock of the newest bucket written, not the
wall clock, or each pass would sum up again minutes half written), each from
all its stored readings and the last reading of the minute before, marks their hours pending
and clears the minutes' marks; the pending hours are summed up from their minutes once closed
(and every ``HOUR_EVERY_S`` while open), since each time reads all their minutes. :meth:`rebuild` does the same
for any window (``skyhive history rollup``, the history simulator).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from skyhive.domain.history import Bucket
from skyhive.domain.rollups import GROUNDED_GAP_S, SPAN, Rollup, merge, period_start, roll_minute
from skyhive.domain.telemetry import Telemetry
from skyhive.ports.clock import Clock
from skyhive.ports.drone_specs import DroneSpecs
from skyhive.ports.rollups import HistoryReader, Key, RollupStore

log = logging.getLogger(__name__)

ROLL_EVERY_S = 5.0
MINUTES_PER_PASS = 2000  # pending minutes summed up per pass (the rest wait for the next)
# An hour still open is summed up again at most this often (and once more when it closes):
# its minutes are read whole each time.
HOUR_EVERY_S = 300.0
MINUTE = SPAN["minute"]
LOOKBACK = timedelta(seconds=GROUNDED_GAP_S)  # the longest step counted (a drone on a pad)
HOUR = SPAN["hour"]
# A rebuild reads history a few hours at once, bounded in documents (memory).
REBUILD_READ_HOURS = 6
REBUILD_READ_BUCKETS = 5000


class DroneRollups:
    def __init__(
        self,
        history: HistoryReader,
        store: RollupStore,
        specs: DroneSpecs,
        clock: Clock,
        hold_s: float,
    ) -> None:
        self._history = history
        self._store = store
        self._specs = specs
        self._clock = clock
        # A minute is closed once its buckets are surely written: its end, plus the time
        # the archiver may hold a bucket, plus a margin for the write.
        self._grace = timedelta(seconds=hold_s + 5.0)
        self._marked: set[Key] = set()  # open minutes this process has marked pending
        # The end of the newest bucket written since the archiver last had nothing to read:
        # how far its history is complete while it catches up (None: caught up, the wall
        # clock is).
        self._front: datetime | None = None
        self._next_pass = 0.0
        self.rolled = 0  # minutes summed up

    def note(self, buckets: Sequence[Bucket]) -> None:
        """Mark the minutes of these (just written) buckets pending."""
        closed_before = self._clock.now() - MINUTE - self._grace
        keys = {(b.drone_id, period_start(b.start, "minute")) for b in buckets}
        self._marked = {k for k in self._marked if k[1] >= closed_before}
        new = [k for k in keys if k[1] < closed_before or k not in self._marked]
        self._store.mark("minute", new, self._clock.now())
        self._marked.update(k for k in new if k[1] >= closed_before)
        if buckets:
            newest = max(b.end for b in buckets)
            self._front = newest if self._front is None else max(self._front, newest)

    def roll_due(self, force: bool = False, idle: bool = False) -> int:
        """Sum up the closed pending minutes, mark their hours pending, and sum up the
        pending hours that closed or waited ``HOUR_EVERY_S`` (at most every ``ROLL_EVERY_S``
        unless ``force``); returns how many minutes. ``idle``: the archiver had nothing to
        read, its history is complete up to now. ``force``: everything pending up to now.

        A period is closed on the archiver's clock: the wall clock once caught up, the newest
        bucket written while it works through a backlog. The marks keep to the wall clock
        (``note``), which is never behind any archiver's: a minute another archiver may sum
        up is never one this process skips marking again."""
        if idle:
            self._front = None
        tick = self._clock.monotonic()
        if not force and tick < self._next_pass:
            return 0
        self._next_pass = tick + ROLL_EVERY_S
        now = self._clock.now()
        upto = now if force or self._front is None else min(now, self._front)
        minutes = self._store.pending("minute", upto - MINUTE - self._grace, MINUTES_PER_PASS)
        if minutes:
            rolled = self._roll_minutes([k for k, _ in minutes])
            self._store.mark("hour", rolled, now)  # before the minutes are forgotten
            self._store.clear("minute", minutes)
        hours = self._store.pending(
            "hour",
            upto - HOUR - self._grace,
            MINUTES_PER_PASS,
            now - timedelta(seconds=HOUR_EVERY_S),
        )
        if hours:
            self._roll_hours([k for k, _ in hours])
            self._store.clear("hour", hours)
        return len(minutes)

    def rebuild(
        self,
        since: datetime,
        until: datetime,
        progress: Callable[[int, int], object] | None = None,
    ) -> int:
        """Sum up every minute (and its hour) with readings in [since, until), an hour of
        them at a time, in time order; returns how many minutes. The readings are read a few
        hours at once (up to ``REBUILD_READ_BUCKETS`` documents): on the embedded server a
        range query costs about as much for an hour as for six."""
        touched = self._history.touched(since, until)
        keys = sorted({(d, period_start(at, "minute")) for d, at in touched}, key=lambda k: k[1])
        documents = Counter(period_start(at, "hour") for _, at in touched)
        hours = _by_hour(keys)
        done = 0
        for chunk in _reads(sorted(hours), documents):
            drones = sorted({d for h in chunk for d, _ in hours[h]})
            readings = self._history.readings_of(drones, chunk[0], chunk[-1] + HOUR)
            for h in chunk:
                done += self.roll(hours[h], readings)
                if progress:
                    progress(done, len(keys))
        if progress:
            progress(done, len(keys))
        return done

    def roll(
        self, keys: Sequence[Key], given: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
    ) -> int:
        """Sum up these minutes, then their hours, from the ``given`` readings (by drone;
        each minute's readings all there) or else from the store; returns how many
        minutes."""
        self._roll_hours(self._roll_minutes(keys, given))
        return len(keys)

    def _roll_minutes(
        self, keys: Sequence[Key], given: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
    ) -> set[Key]:
        """Sum up these minutes, an hour of them at a time; returns their hours."""
        hours: set[Key] = set()
        for group in _by_hour(keys).values():
            minutes = self._minutes(group, given)
            self._store.write(minutes)
            hours.update((r.drone_id, period_start(r.start, "hour")) for r in minutes if r.readings)
        self.rolled += len(keys)
        return hours

    def _roll_hours(self, keys: Iterable[Key]) -> None:
        """Sum up these hours from their stored minutes, one query per hour."""
        for hour, group in sorted(_by_hour(keys).items()):
            drones = sorted({d for d, _ in group})
            parts: dict[str, list[dict[str, Any]]] = {}
            for doc in self._store.minutes(drones, hour, hour + HOUR):
                parts.setdefault(doc["drone_id"], []).append(doc)
            self._store.write([merge(d, "hour", hour, docs) for d, docs in parts.items()])

    def roll_readings(self, readings: Mapping[str, Sequence[Mapping[str, Any]]]) -> int:
        """Sum up the minutes of these readings (by drone; each minute's readings all here)
        from them, not from the store, then their hours; returns how many minutes."""
        keys = {(d, period_start(x["ts"], "minute")) for d, rs in readings.items() for x in rs}
        return self.roll(sorted(keys), readings)

    def _minutes(
        self, keys: Sequence[Key], given: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
    ) -> list[Rollup]:
        """The minutes of ``keys`` (all within one hour), each drone's in time order so each
        minute starts from the last reading of the one before; from the ``given`` readings,
        else from the store."""
        drones = sorted({d for d, _ in keys})
        since = min(start for _, start in keys)
        until = max(start for _, start in keys) + MINUTE
        found = given if given is not None else self._history.readings_of(drones, since, until)
        by_minute: dict[Key, list[Mapping[str, Any]]] = {}
        for d in drones:
            for x in found.get(d, ()):
                if since <= x["ts"] < until:
                    by_minute.setdefault((d, period_start(x["ts"], "minute")), []).append(x)
        alerts = self._store.alert_counts(drones, since, until)
        specs = self._specs.specs(drones)
        # Each minute's first step starts from the last reading before it: of the latest
        # minute with readings, stored or summed up here, within the longest gap counted.
        lasts = self._store.lasts(drones, since - LOOKBACK, until)
        out: list[Rollup] = []
        for key in sorted(set(keys)):
            drone, start = key
            mine = lasts.setdefault(drone, {})
            before = [m for m in mine if start - LOOKBACK <= m < start]
            r = roll_minute(
                drone,
                start,
                by_minute.get(key, ()),
                mine[max(before)] if before else None,
                alerts.get(key, 0),
                specs[drone].battery_capacity_wh if drone in specs else None,
            )
            if r.last is not None:
                mine[start] = r.last
            out.append(r)
        return out


def _reads(hours: Sequence[datetime], documents: Mapping[datetime, int]) -> list[list[datetime]]:
    """Consecutive runs of these hours, each of at most ``REBUILD_READ_HOURS`` and (unless
    one hour alone is more) ``REBUILD_READ_BUCKETS`` documents: what a rebuild reads at once."""
    out: list[list[datetime]] = []
    size = 0
    for h in hours:
        last = out[-1] if out else None
        if (
            last is None
            or h - last[0] >= REBUILD_READ_HOURS * HOUR
            or size + documents[h] > REBUILD_READ_BUCKETS
        ):
            out.append([h])
            size = documents[h]
        else:
            last.append(h)
            size += documents[h]
    return out


def _by_hour(keys: Iterable[Key]) -> dict[datetime, list[Key]]:
    out: dict[datetime, list[Key]] = {}
    for key in keys:
        out.setdefault(period_start(key[1], "hour"), []).append(key)
    return out


class StreamedRollups:
    """Rollups of readings handed over in time order per drone, a batch at a time (the
    history simulator's chunks), summed up from the readings themselves, not read back (raw
    readings older than retention are not even stored). A drone's last minute in a batch may
    go on in the next, so it is held until a later reading, or :meth:`close`, completes it."""

    def __init__(self, rollups: DroneRollups) -> None:
        self._rollups = rollups
        self._held: dict[str, list[dict[str, Any]]] = {}
        self.minutes = 0

    def add(self, readings: Iterable[Telemetry]) -> int:
        """Sum up the complete minutes of these readings (and of those held); returns how
        many."""
        batch = {d: list(rs) for d, rs in self._held.items()}
        for t in readings:
            batch.setdefault(t.drone_id, []).append(_row(t))
        ready: dict[str, list[dict[str, Any]]] = {}
        self._held = {}
        for drone, rows in batch.items():
            rows.sort(key=lambda x: (x["ts"], x["seq"]))
            last = period_start(rows[-1]["ts"], "minute")
            ready[drone] = [x for x in rows if x["ts"] < last]
            self._held[drone] = [x for x in rows if x["ts"] >= last]
        done = self._rollups.roll_readings({d: rs for d, rs in ready.items() if rs})
        self.minutes += done
        return done

    def close(self) -> int:
        """Sum up what is held."""
        held, self._held = self._held, {}
        done = self._rollups.roll_readings(held)
        self.minutes += done
        return done


def _row(t: Telemetry) -> dict[str, Any]:
    """A reading as the rollups read it."""
    return {
        "ts": t.ts,
        "seq": t.seq,
        "battery_pct": t.battery_pct,
        "lat": t.lat,
        "lon": t.lon,
        "alt_m": t.alt_m,
        "speed_mps": t.speed_mps,
        "status": t.status,
    }
