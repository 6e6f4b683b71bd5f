"""The Parquet archive's export against the embedded MongoDB: one known day (archive_data)
written through the real repositories, exported, read back with pyarrow, checked, exported
again, thinned by retention, and the nightly task with its lease."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pyarrow.parquet as pq
import pytest
from archive_data import AFTER, DAY, EIGHT, MIDNIGHT, READINGS_OF_DAY, make_day

from manual_clock import ManualClock
from skyhive.adapters.archive_manifest import MongoArchiveManifest
from skyhive.adapters.parquet_archive import VERSION_KEY
from skyhive.domain.archive import TABLES, NotClosed
from skyhive.domain.deliveries import delivered_fields
from skyhive.domain.history import group_readings
from skyhive.domain.telemetry import validate_telemetry
from skyhive.services.archive_export import ArchiveError
from skyhive.settings import Settings
from skyhive.wiring import Clients


def _rows(clients: Clients, table: str, day: date = DAY) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = pq.read_table(clients.archive.path(table, day)).to_pylist()
    return rows


def test_a_day_is_exported_whole_and_verified(clients: Clients) -> None:
    ids = make_day(clients)
    record = clients.archive_exporter.export_day(DAY)

    assert record.verified and not record.problems
    assert record.readings_in_mongo == READINGS_OF_DAY == record.rows
    counts = {name: t.rows for name, t in record.tables.items()}
    assert counts == {
        "telemetry": READINGS_OF_DAY,
        "deliveries": 6,  # A-E and G; F was ordered the day before
        "alerts": 2,
        "drones": 2,
        "stations": 50,
        # every table of the day, in its hive partition under the schema version
    } and set(counts) == set(TABLES)
    path = clients.archive.path("telemetry", DAY)
    assert path.relative_to(clients.settings.archive_path()).as_posix() == (
        "v1/telemetry/date=2026-11-23/part-0.parquet"
    )
    assert pq.ParquetFile(path).schema_arrow.metadata[VERSION_KEY.encode()] == b"1"
    assert record.open_deliveries == 1  # G: picked up after midnight, under way at the export

    telemetry = _rows(clients, "telemetry")
    keys = [(r["drone_id"], r["seq"]) for r in telemetry]
    assert keys == sorted(set(keys))  # each reading once (one was stored twice), in key order
    d1 = [r["seq"] for r in telemetry if r["drone_id"] == "d-1"]
    assert d1 == [*range(1, 121), 998]  # not the reading before midnight, nor the one at the next
    first = telemetry[0]
    assert first["ts"] == EIGHT and first["ts_ms"] == int(EIGHT.timestamp() * 1000)
    assert first["status"] == "in_flight" and first["battery_pct"] == 90.0
    assert {r["unregistered"] for r in telemetry if r["drone_id"] == "d-3"} == {True}
    assert not any(r["unregistered"] for r in telemetry if r["drone_id"] != "d-3")
    assert {r["extra"] for r in telemetry if r["drone_id"] == "d-2"} == {'{"wind_mps": 3.5}'}

    deliveries = {r["delivery_id"]: r for r in _rows(clients, "deliveries")}
    a = deliveries[ids["A"]]
    assert (a["status"], a["wait_s"], a["delivery_s"], a["drone_id"]) == (
        "delivered",
        60.0,
        1200.0,
        "d-1",
    )
    assert a["assigned_at"] == EIGHT.replace(hour=9, minute=1)
    assert a["promised_eta"] == EIGHT.replace(hour=9, minute=25)
    assert a["price_estimate"] is not None and a["price_final"] == a["price_estimate"]
    failed = deliveries[ids["D"]]
    assert (failed["status"], failed["reason"]) == (
        "failed",
        "drone reported failure: insufficient battery",
    )
    assert failed["ended_at"] == EIGHT.replace(hour=9, minute=50)
    assert deliveries[ids["E"]]["reason"] == "cancelled by request"
    assert deliveries[ids["G"]]["status"] == "picked_up" and deliveries[ids["G"]]["reason"] is None
    assert ids["F"] not in deliveries

    assert [r["alert_id"] for r in _rows(clients, "alerts")] == ["a-1", "a-2"]
    drones = _rows(clients, "drones")
    assert [(d["drone_id"], d["model"], d["battery_capacity_wh"]) for d in drones] == [
        ("d-1", "x4", 500.0),
        ("d-2", "x8", 800.0),
    ]
    assert {s["pads"] for s in _rows(clients, "stations")} == {4}

    stored = MongoArchiveManifest(clients.db).get(DAY)
    assert stored == record
    assert clients.archive_exporter.exported_and_verified(DAY)
    assert not clients.archive_exporter.exported_and_verified(DAY - timedelta(days=1))


def test_exporting_a_day_again_writes_the_same_bytes(clients: Clients) -> None:
    make_day(clients)
    first = clients.archive_exporter.export_day(DAY)
    again = clients.archive_exporter.export_day(DAY)
    assert {n: t.sha256 for n, t in first.tables.items()} == {
        n: t.sha256 for n, t in again.tables.items()
    }
    assert again.verified and [r.day for r in clients.archive_exporter.records()] == [DAY]
    leftovers = [p for p in clients.settings.archive_path().rglob("*") if p.name.startswith(".")]
    assert leftovers == []  # no temporary file left behind


def test_a_day_not_closed_is_refused(clients: Clients) -> None:
    make_day(clients)
    exporter = clients.archive_exporter
    with pytest.raises(NotClosed, match="not closed yet"):
        exporter.export_day(DAY + timedelta(days=1))  # today, at AFTER
    with pytest.raises(NotClosed):  # midnight has passed, but history may still come in
        exporter.export_day(DAY, now=MIDNIGHT + timedelta(days=1, minutes=5))
    assert not clients.archive.path("telemetry", DAY + timedelta(days=1)).exists()


def test_an_empty_day_writes_empty_valid_files(clients: Clients) -> None:
    make_day(clients)
    quiet = DAY - timedelta(days=3)
    record = clients.archive_exporter.export_day(quiet)
    assert record.verified and record.rows == 0 and record.tables["deliveries"].rows == 0
    table = pq.read_table(clients.archive.path("telemetry", quiet))
    assert table.num_rows == 0 and "battery_pct" in table.schema.names
    result = clients.archive_sql.query("SELECT count(*) AS n FROM telemetry")
    assert result.rows == [(0,)]


def test_a_reading_stored_after_the_export_unverifies_the_day_until_it_is_exported_again(
    clients: Clients,
) -> None:
    make_day(clients)
    exporter = clients.archive_exporter
    exporter.export_day(DAY)
    late = {"drone_id": "d-2", "seq": 500, "ts": int(EIGHT.timestamp() * 1000) + 3_600_000}
    clients.telemetry.store(group_readings([validate_telemetry(late | {"battery_pct": 10.0})]))

    record, note = exporter.verify(DAY)
    assert not record.verified and f"MongoDB holds {READINGS_OF_DAY + 1}" in note
    assert (
        f"MongoDB holds {READINGS_OF_DAY + 1} readings of the day, the file {READINGS_OF_DAY}"
        in record.problems
    )
    assert not exporter.exported_and_verified(DAY)

    clients.__dict__["clock"].advance(600)
    done = exporter.run_due(clients.clock.now())  # the nightly task writes it again
    assert [(r.day, r.rows, r.verified) for r in done if r.day == DAY] == [
        (DAY, READINGS_OF_DAY + 1, True)
    ]
    assert exporter.verify(DAY)[0].verified


def test_a_changed_or_missing_file_fails_verification(clients: Clients) -> None:
    make_day(clients)
    exporter = clients.archive_exporter
    exporter.export_day(DAY)
    alerts = clients.archive.path("alerts", DAY)
    alerts.write_bytes(clients.archive.path("drones", DAY).read_bytes())  # valid, not the same
    record, _ = exporter.verify(DAY)
    assert record.problems == ("alerts: the file changed since its export",)
    alerts.write_bytes(alerts.read_bytes()[:-10])
    record, _ = exporter.verify(DAY)
    assert record.problems[0].startswith("alerts: the file is unreadable")
    clients.archive.path("telemetry", DAY).unlink()
    record, _ = exporter.verify(DAY)
    assert "telemetry: the file is missing" in record.problems and not record.verified
    assert not exporter.exported_and_verified(DAY)
    with pytest.raises(ArchiveError, match="has not been exported"):
        exporter.verify(DAY - timedelta(days=1))


def test_after_retention_removed_the_raw_readings_the_archive_stays_their_copy(
    clients: Clients,
) -> None:
    make_day(clients)
    exporter = clients.archive_exporter
    exporter.export_day(DAY)
    # What the TTL index does to the day's buckets.
    clients.db.telemetry.delete_many({"drone_id": {"$in": ["d-1", "d-2", "d-3"]}})

    record, note = exporter.verify(DAY)
    assert record.verified and "retention has removed raw readings" in note
    assert exporter.exported_and_verified(DAY)
    with pytest.raises(ArchiveError, match="would lose the others"):
        exporter.export_day(DAY)
    assert pq.read_table(clients.archive.path("telemetry", DAY)).num_rows == READINGS_OF_DAY


def test_the_nightly_task_exports_each_retained_day_once_one_archiver_at_a_time(
    make_settings: Callable[..., Settings],
) -> None:
    # The readings are at fixed past times: the server's own TTL would remove them at once.
    settings = make_settings(history={"raw_days": 3, "expire": False})
    clients, other = Clients(settings), Clients(settings)
    try:
        ids = make_day(clients)
        now = AFTER + timedelta(days=1)  # the day after DAY has closed too
        clients.__dict__["clock"] = ManualClock(now)
        other.__dict__["clock"] = ManualClock(now)
        exporter, rival = clients.archive_exporter, other.archive_exporter
        assert rival.holder != exporter.holder

        assert MongoArchiveManifest(other.db).claim(
            rival.holder, int(now.timestamp() * 1000), 60_000
        )
        assert exporter.run_due(now) == []  # another archiver holds the lease

        later = now + timedelta(minutes=2)  # its lease has expired (it died)
        done = exporter.run_due(later)
        assert [(r.day, r.verified) for r in done] == [(DAY, True), (DAY + timedelta(days=1), True)]
        assert done[1].rows == 1  # d-1's reading at midnight
        # Kept by retention for 3 days: the day before DAY is already being removed.
        assert clients.archive_exporter.records()[0].day == DAY

        # G is still under way: the next run writes DAY's deliveries again, and only those.
        telemetry_sha = done[0].tables["telemetry"].sha256
        again = exporter.run_due(later)
        assert [(r.day, r.open_deliveries) for r in again] == [(DAY, 1)]
        g = clients.deliveries.get(ids["G"])
        assert g is not None
        dropped = MIDNIGHT + timedelta(days=1, minutes=20)
        clients.deliveries.transition(
            g.id, "delivered", dropped, "delivered", delivered_fields(g, dropped)
        )
        refreshed = exporter.run_due(later)
        assert [(r.day, r.open_deliveries) for r in refreshed] == [(DAY, 0)]
        assert refreshed[0].tables["telemetry"].sha256 == telemetry_sha
        assert exporter.run_due(later) == []  # nothing left to do
        # The lease was given back: the rival takes it at once.
        assert MongoArchiveManifest(other.db).claim(rival.holder, int(later.timestamp() * 1000), 1)
    finally:
        clients.close()
        other.close()


def test_a_day_exported_after_retention_began_removing_it_is_not_verified(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(history={"raw_days": 2, "expire": True})
    clients = Clients(settings)
    try:
        make_day(clients)
        late = AFTER + timedelta(days=2)  # DAY's first buckets are older than two days
        record = clients.archive_exporter.export_day(DAY, now=late)
        assert not record.verified
        assert any("began removing the day's readings" in p for p in record.problems)
        assert not clients.archive_exporter.exported_and_verified(DAY)
    finally:
        clients.close()
