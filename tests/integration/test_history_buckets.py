"""History in buckets on the embedded MongoDB-wire server and the real bus: a replayed,
overlapping or out-of-order batch stores each reading once, in the bucket of its own time;
held readings are acknowledged only once written; the API reads buckets as it read readings;
per-reading documents of the older layout migrate into buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api_asserts import body

from auth_helpers import api_client
from skyhive.adapters import mongo_indexes
from skyhive.domain.history import BUCKET_S, group_readings
from skyhive.domain.telemetry import Telemetry, validate_telemetry
from skyhive.ports.bus import BusMessage
from skyhive.services.archiver import Archiver
from skyhive.services.ingest import encode_for_bus
from skyhive.wiring import Clients
from skyhive.workers.archiver import build_archiver

BASE = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
BASE_MS = int(BASE.timestamp() * 1000)


def reading(drone: str, seq: int, at_ms: int | None = None, **extra: Any) -> Telemetry:
    at = (seq * 1000) if at_ms is None else at_ms
    return validate_telemetry(
        {"drone_id": drone, "seq": seq, "ts": BASE_MS + at, "battery_pct": 90.0 - seq / 10} | extra
    )


def messages(readings: list[Telemetry]) -> list[BusMessage]:
    return [
        BusMessage(f"{BASE_MS + i}-{t.seq}", t.drone_id, encode_for_bus(t))
        for i, t in enumerate(readings)
    ]


def archiver(clients: Clients) -> Archiver:
    mongo_indexes.ensure_indexes(clients.db)
    a = build_archiver(clients, "test-archiver")
    a.setup()
    return a


def test_the_same_batch_twice_and_overlapping_batches_store_each_reading_once(
    clients: Clients,
) -> None:
    a = archiver(clients)
    rs = [reading("r1", s) for s in range(30)] + [reading("r2", s) for s in range(12)]
    a.archive(messages(rs))
    a.archive(messages(rs))  # the bus redelivers the batch after a crash
    a.archive(messages(rs[10:25] + rs[28:36]))  # and batches that overlap
    ids = clients.telemetry.reading_ids()
    assert sorted(ids) == sorted(t.key for t in rs)  # duplicates would show
    # One document per drone per bucket span.
    assert clients.db.telemetry.count_documents({"drone_id": "r1"}) == 30 // BUCKET_S
    assert clients.db.telemetry.count_documents({}) == 30 // BUCKET_S + 3
    assert clients.telemetry.count_for("r1") == 30 and clients.telemetry.count_for("r2") == 12


def test_out_of_order_readings_join_their_own_buckets(clients: Clients) -> None:
    a = archiver(clients)
    a.archive(messages([reading("o1", s) for s in range(10, 20)]))
    a.archive(messages([reading("o1", s) for s in range(0, 10)]))  # older, later
    a.archive(messages([reading("o1", 99, at_ms=12_345)]))  # a straggler into a written bucket
    a.archive(messages([reading("o1", 7, at_ms=7000, wind=9)]))  # seq 7 again, new content
    docs = {d["_id"]: sorted(d["r"]) for d in clients.db.telemetry.find({"drone_id": "o1"})}
    assert docs == {
        "o1:2026-11-23T12:00:00Z": ["0", "1", "2", "3", "4"],
        "o1:2026-11-23T12:00:05Z": ["5", "6", "7", "8", "9"],
        "o1:2026-11-23T12:00:10Z": ["10", "11", "12", "13", "14", "99"],
        "o1:2026-11-23T12:00:15Z": ["15", "16", "17", "18", "19"],
    }
    newest = clients.telemetry.history("o1", limit=3)
    assert [r["seq"] for r in newest] == [19, 18, 17]
    [seven] = [r for r in clients.telemetry.readings("o1") if r["seq"] == 7]
    assert seven["extra"] == {"wind": 9}  # the last write of a seq wins, as a replay's $set


def test_held_readings_are_acknowledged_only_once_written(clients: Clients) -> None:
    a = archiver(clients)
    s = clients.settings
    rs = [reading(f"h{d}", seq) for seq in range(3) for d in range(4)]  # all in bucket 12:00:00
    clients.bus.publish(s.telemetry_stream, [(t.drone_id, encode_for_bus(t)) for t in rs])
    assert a.poll() == len(rs)
    assert a.held == len(rs) and clients.telemetry.reading_ids() == []
    assert clients.bus.pending_count(s.telemetry_stream, s.archiver_group) == len(rs)
    more = [reading("h0", 5)]  # h0 moves on to its next bucket: its first is complete
    clients.bus.publish(s.telemetry_stream, [(t.drone_id, encode_for_bus(t)) for t in more])
    assert a.poll() == 1
    assert sorted(clients.telemetry.reading_ids()) == ["h0:0", "h0:1", "h0:2"]
    assert clients.bus.pending_count(s.telemetry_stream, s.archiver_group) == len(rs) - 2
    assert a.poll() == 0  # the stream is idle: everything is written
    assert len(clients.telemetry.reading_ids()) == len(rs) + 1
    assert clients.bus.pending_count(s.telemetry_stream, s.archiver_group) == 0


def test_the_history_api_reads_across_buckets(clients: Clients) -> None:
    mongo_indexes.ensure_indexes(clients.db)
    readings = [reading("api1", s, at_ms=s * 700) for s in range(1, 40)]  # 0.7 s apart
    clients.telemetry.store(group_readings(readings))
    client = api_client(clients, "viewer")

    def seqs(query: str) -> list[int]:
        resp = client.get(f"/api/v1/drones/api1/telemetry?{query}")
        assert resp.status_code == 200, resp.data
        return [r["seq"] for r in body(resp)["items"]]

    assert seqs("limit=12") == list(range(39, 27, -1))
    # Millisecond bounds, within buckets: since inclusive, until exclusive.
    assert seqs(f"since={BASE_MS + 7000}&until={BASE_MS + 11_900}") == [16, 15, 14, 13, 12, 11, 10]
    item = body(client.get("/api/v1/drones/api1/telemetry?limit=1"))["items"][0]
    assert item["id"] == "api1:39" and item["ts"] == "2026-11-23T12:00:27.300000Z"
    chart = body(
        client.get(
            "/api/v1/drones/api1/telemetry?bucket_s=10&since=2026-11-23T12:00:00Z"
            "&until=2026-11-23T12:01:00Z"
        )
    )["items"]
    assert [(c["ts"], c["readings"]) for c in chart] == [
        ("2026-11-23T12:00:20Z", 11),
        ("2026-11-23T12:00:10Z", 14),
        ("2026-11-23T12:00:00Z", 14),
    ]


def test_per_reading_documents_migrate_into_buckets(clients: Clients) -> None:
    rs = [reading("m1", s, wind=s) for s in range(12)] + [reading("m2", 1)]
    old = [t.history_document() for t in rs]
    old[-1]["unregistered"] = True
    clients.db.telemetry.insert_many(old)
    clients.db.telemetry.insert_one({"_id": "junk:1", "drone_id": "junk", "seq": "x"})
    mongo_indexes.ensure_indexes(clients.db)
    assert clients.telemetry.migrate_readings(batch=5) == len(rs)
    assert clients.telemetry.migrate_readings() == 0  # done; the junk stays where it was
    assert sorted(clients.telemetry.reading_ids("^m")) == sorted(t.key for t in rs)
    assert clients.db.telemetry.count_documents({"seq": {"$exists": True}}) == 1
    [m2] = clients.telemetry.readings("m2")
    assert m2["unregistered"] is True
    newest = clients.telemetry.history("m1", limit=2)
    assert [(r["seq"], r["extra"]) for r in newest] == [(11, {"wind": 11}), (10, {"wind": 10})]
    assert newest[0]["ts"] == BASE + timedelta(seconds=11)
