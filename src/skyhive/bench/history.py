"""History benchmark: archive telemetry from the bus into MongoDB history, per-reading
documents (the layout before buckets) against buckets, and buckets with the rollups the
archiver keeps (``services/rollups.py``: their cost is the difference), on fresh embedded
servers.

``--drones`` drones report at 1 Hz for ``readings / drones`` seconds of reading time; every
reading is put on the telemetry stream first, then the archiver drains it in this process
(so its CPU is this process's). Reported per layout: documents written, readings and
documents per second of drain, CPU µs per reading of the MongoDB-wire server (from /proc) and of
the archiver, and bytes per reading (``collStats`` size, and the SQLite file's growth).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from skyhive.bench.cpu import cpu_seconds
from skyhive.bench.stack import bench_stack


def _base_ms() -> int:
    """The next minute: as live readings are, recent (retention keeps them) and in minutes
    still open when they are written, so the archiver marks each drone-minute once; the
    rollups are summed up at the end."""
    return (int(time.time()) // 60 + 1) * 60_000


@dataclass
class HistoryRun:
    layout: str
    readings: int
    documents: int
    drain_s: float
    readings_per_s: float
    documents_per_s: float
    server_us_per_reading: float
    archiver_us_per_reading: float
    bytes_per_reading: float  # collStats size / readings
    file_bytes_per_reading: float  # growth of the SQLite files / readings
    complete: bool
    rollup_minutes: int = 0  # drone-minutes summed up


@dataclass
class HistoryReport:
    drones: int
    readings: int
    runs: list[HistoryRun] = field(default_factory=list)


def _body(base_ms: int, drone: int, second: int) -> bytes:
    return orjson.dumps(
        {
            "drone_id": f"bench-{drone}",
            "seq": second + 1,
            "ts": base_ms + second * 1000,
            "lat": 37.8 + second * 1e-6,
            "lon": -122.27,
            "alt_m": 80.0,
            "speed_mps": 15.0,
            "heading_deg": 90.0,
            "battery_pct": 80.0 - second / 1000,
            "status": "in_flight",
        }
    )


def _per_reading_archive(clients: Any, msgs: list[Any]) -> None:
    """What the archiver did before buckets: a document per reading, ``insert_many``."""
    from pymongo.errors import BulkWriteError

    from skyhive.domain.telemetry import parse_telemetry

    readings = [parse_telemetry(m.value) for m in msgs]
    known = clients.fleet.registered(sorted({t.drone_id for t in readings}))
    docs = [t.history_document() for t in readings]
    for doc in docs:
        if not known[doc["drone_id"]]:
            doc["unregistered"] = True
    with contextlib.suppress(BulkWriteError):  # a replayed _id: a no-op
        clients.db.history_readings.insert_many(docs, ordered=False)


class _NoRollups:
    """The archiver without its rollups (the ``buckets`` run)."""

    def note(self, buckets: Any) -> None:
        pass

    def roll_due(self, force: bool = False, idle: bool = False) -> int:
        return 0


def _sqlite_bytes(data_dir: Any) -> int:
    return sum(p.stat().st_size for p in (data_dir / "mongo").glob("*.db*"))


def run_history_bench(drones: int, readings: int, progress: Any = print) -> HistoryReport:
    from skyhive.adapters import mongo_indexes
    from skyhive.services.archiver import Archiver
    from skyhive.workers.archiver import build_archiver

    seconds = max(1, readings // drones)
    base_ms = _base_ms()
    report = HistoryReport(drones, drones * seconds)
    for layout in ("readings", "buckets", "buckets+rollups"):
        with bench_stack((), "amqtt", progress) as bs:
            clients, s = bs.clients, bs.settings
            mongo_indexes.ensure_indexes(clients.db)
            clients.db.history_readings.create_index(
                [("drone_id", 1), ("ts", -1)], name="drone_ts"
            )  # the index the per-reading layout had
            bus = clients.bus
            bus.ensure_group(s.telemetry_stream, s.archiver_group)
            for second in range(seconds):
                bus.publish(
                    s.telemetry_stream,
                    [(f"bench-{d}", _body(base_ms, d, second)) for d in range(drones)],
                )
            server = bs.pids["mongodb server"]
            archiver = build_archiver(clients, "bench-archiver")
            if layout == "buckets":
                archiver = Archiver(
                    s, bus, clients.fleet, clients.telemetry, clients.deadletters,
                    _NoRollups(), "bench-archiver", clients.clock,
                )  # fmt: skip
            files_before = _sqlite_bytes(bs.data_dir)
            progress(f"{layout}: archiving {report.readings} readings of {drones} drones ...")
            cpu0, own0, t0 = cpu_seconds(server) or 0.0, time.process_time(), time.monotonic()
            if layout.startswith("buckets"):
                while archiver.poll():
                    pass
                archiver.flush(everything=True)
                # The passes that would run as each minute closes, at once.
                store = clients.rollup_store
                pending = store.pending("minute", datetime.now(UTC) + timedelta(days=1), 10**6)
                clients.rollups.roll([k for k, _ in pending])
                store.clear("minute", pending)
            else:
                while msgs := bus.consume(
                    s.telemetry_stream, s.archiver_group, "bench", s.archiver_batch_size, 0
                ):
                    _per_reading_archive(clients, msgs)
                    bus.ack(s.telemetry_stream, s.archiver_group, [m.id for m in msgs])
            drain = time.monotonic() - t0
            server_s = (cpu_seconds(server) or 0.0) - cpu0
            own_s = time.process_time() - own0
            name = "history_readings" if layout == "readings" else "telemetry"
            stored = (
                clients.db[name].count_documents({})
                if layout == "readings"
                else len(clients.telemetry.reading_ids())
            )
            docs = clients.db[name].count_documents({})
            size = clients.db.command("collStats", name).get("size", 0)
            n = report.readings
            report.runs.append(
                HistoryRun(
                    layout=layout,
                    readings=stored,
                    documents=docs,
                    drain_s=round(drain, 2),
                    readings_per_s=round(n / drain, 1),
                    documents_per_s=round(docs / drain, 1),
                    server_us_per_reading=round(server_s * 1e6 / n, 1),
                    archiver_us_per_reading=round(own_s * 1e6 / n, 1),
                    bytes_per_reading=round(size / n, 1),
                    file_bytes_per_reading=round(
                        (_sqlite_bytes(bs.data_dir) - files_before) / n, 1
                    ),
                    complete=stored == n,
                    rollup_minutes=clients.db.rollups_minute.count_documents({}),
                )
            )
    return report
