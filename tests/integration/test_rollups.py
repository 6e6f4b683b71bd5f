"""Drone rollups on the real servers: the archiver marks the minutes it writes, a pass sums
them up from what MongoDB stores (replays and stragglers counted once), the figures match the
raw readings, a crash loses no minute, a smaller figure never replaces a bigger one, a rebuild
gives the same documents, retention makes TTL indexes, and the telemetry API serves the finest
level still kept."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from click.testing import CliRunner

from auth_helpers import api_client
from cli_env import cli_env
from manual_clock import ManualClock
from skyhive.adapters import mongo_indexes
from skyhive.adapters.retention import ensure_retention
from skyhive.cli import cli
from skyhive.domain.alert_lifecycle import AlertUpdate
from skyhive.domain.geo import haversine_m
from skyhive.domain.history import group_readings
from skyhive.domain.rollups import GROUNDED_GAP_S, MAX_GAP_S, roll_minute
from skyhive.domain.telemetry import Telemetry, validate_telemetry
from skyhive.ports.bus import BusMessage
from skyhive.services.ingest import encode_for_bus
from skyhive.services.rollups import HOUR_EVERY_S, ROLL_EVERY_S
from skyhive.settings import HistoryConfig, Settings
from skyhive.wiring import Clients
from skyhive.workers.archiver import build_archiver

BASE = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
BASE_MS = int(BASE.timestamp() * 1000)
STATUSES = ("idle", "in_flight", "in_flight", "returning", "charging")


def flight(drone: str, seconds: int, every_s: int = 2) -> list[Telemetry]:
    """A drone flying north-east and back, its status changing each 40 s, over ``seconds``."""
    out = []
    for i, at in enumerate(range(0, seconds, every_s)):
        status = STATUSES[(at // 40) % len(STATUSES)]
        out.append(
            validate_telemetry(
                {
                    "drone_id": drone,
                    "seq": i,
                    "ts": BASE_MS + at * 1000 + 137,
                    "battery_pct": max(0.0, 95 - at * 0.05) if status != "charging" else 60.0,
                    "lat": 37.80 + 0.0001 * math.sin(at / 30),
                    "lon": -122.27 + 0.0001 * at / 10,
                    "alt_m": 60 + 20 * math.sin(at / 17),
                    "speed_mps": 8 + (at % 7),
                    "status": status,
                }
            )
        )
    return out


def messages(readings: list[Telemetry]) -> list[BusMessage]:
    return [
        BusMessage(f"{BASE_MS + i}-{t.seq}", t.drone_id, encode_for_bus(t))
        for i, t in enumerate(readings)
    ]


def expected_minute(readings: list[Telemetry], start: datetime) -> dict[str, Any]:
    """The minute's figures straight from the raw readings, by the rules stated in
    ``domain/rollups.py``, without its code."""
    ordered = sorted(readings, key=lambda t: t.ts)
    end = start + timedelta(minutes=1)
    mine = [t for t in ordered if start <= t.ts < end]
    before = [t for t in ordered if t.ts < start]
    chain = before[-1:] + mine
    steps = list(pairwise(chain))
    dist = used = flight = 0.0
    status_s: dict[str, float] = {}
    for a, b in steps:
        dt = (b.ts - a.ts).total_seconds()
        if dt > (GROUNDED_GAP_S if a.status in ("idle", "charging") else MAX_GAP_S):
            continue
        status_s[str(a.status)] = status_s.get(str(a.status), 0) + dt
        if a.status in ("in_flight", "returning", "emergency"):
            dist += haversine_m(a.lat or 0, a.lon or 0, b.lat or 0, b.lon or 0)
            flight += max(0.0, a.battery_pct - b.battery_pct)
        used += max(0.0, a.battery_pct - b.battery_pct)
    return {
        "readings": len(mine),
        "distance_m": round(dist, 2),
        "battery_used_pct": round(used, 3),
        "flight_used_pct": round(flight, 3),
        "battery_min": min(t.battery_pct for t in mine),
        "alt_max": max(t.alt_m or 0 for t in mine),
        "speed_max": max(t.speed_mps or 0 for t in mine),
        "status_s": {k: round(v, 3) for k, v in sorted(status_s.items())},
    }


def minutes(clients: Clients, drone: str) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in clients.db.rollups_minute.find({"drone_id": drone}, {"last": 0})}


def test_minutes_and_hours_match_the_raw_readings_and_replays_count_once(
    clients: Clients,
) -> None:
    mongo_indexes.ensure_indexes(clients.db)
    a = build_archiver(clients, "rollups")
    a.setup()
    r1, r2 = flight("ru1", 200), flight("ru2", 130, every_s=3)
    a.archive(messages(r1[20:] + r2))
    a.archive(messages(r1))  # a replay, and the stragglers of r1[:20]
    a.archive(messages(r1[40:60] + r2[::-1]))  # overlapping, out of order
    assert clients.rollups.roll_due(force=True) > 0
    assert clients.rollup_store.pending("minute", BASE + timedelta(days=1), 100) == []

    for drone, readings in (("ru1", r1), ("ru2", r2)):
        stored = minutes(clients, drone)
        assert len(stored) == math.ceil(readings[-1].ts.minute + 1)
        for m in range(len(stored)):
            start = BASE + timedelta(minutes=m)
            doc = stored[f"{drone}:{start:%Y-%m-%dT%H:%M}Z"]
            want = expected_minute(readings, start)
            got = {k: doc[k] for k in want}
            assert got == want, (drone, m)
        [hour] = list(clients.db.rollups_hour.find({"drone_id": drone}))
        assert hour["readings"] == len(readings)
        assert hour["battery_used_pct"] == round(
            sum(d["battery_used_pct"] for d in stored.values()), 3
        )
        assert hour["distance_m"] == round(sum(d["distance_m"] for d in stored.values()), 2)
        assert hour["battery_min"] == min(t.battery_pct for t in readings)


def test_a_pending_minute_survives_a_crash_and_is_summed_up_by_the_next_pass(
    clients: Clients,
) -> None:
    mongo_indexes.ensure_indexes(clients.db)
    a = build_archiver(clients, "rollups")
    a.setup()
    readings = flight("rc1", 100)
    a.archive(messages(readings))  # written and marked; the process dies before its pass
    assert {
        k[0] for k, _ in clients.rollup_store.pending("minute", BASE + timedelta(hours=1), 10)
    } == {"rc1"}
    assert minutes(clients, "rc1") == {}
    after = Clients(clients.settings)
    try:
        assert after.rollups.roll_due() == 2
    finally:
        after.close()
    assert set(minutes(clients, "rc1")) == {"rc1:2026-11-23T12:00Z", "rc1:2026-11-23T12:01Z"}
    assert clients.rollup_store.pending("minute", BASE + timedelta(hours=1), 10) == []


def test_a_backlog_is_summed_up_on_the_archivers_clock_each_minute_once(
    clients: Clients,
) -> None:
    """An archiver an hour behind sums up a minute once its readings are written (the newest
    bucket written is past it), not at every pass while the backlog is read."""
    mongo_indexes.ensure_indexes(clients.db)
    clock = ManualClock(BASE + timedelta(hours=1))
    clients.clock = clock  # type: ignore[misc]
    a = build_archiver(clients, "rollups")
    a.setup()
    readings = flight("rk1", 240, every_s=1)
    a.archive(messages(readings[:150]))  # minutes 0 and 1, half of minute 2
    assert clients.rollups.roll_due() == 2
    a.archive(messages(readings[150:]))
    clock.advance(ROLL_EVERY_S)
    assert clients.rollups.roll_due() == 1  # minute 2, whole; minute 3 is still being read
    clock.advance(ROLL_EVERY_S)
    assert clients.rollups.roll_due(idle=True) == 1  # caught up: minute 3 closed
    assert clients.rollups.rolled == 4
    assert [d["readings"] for _, d in sorted(minutes(clients, "rk1").items())] == [60] * 4


def test_a_figure_of_fewer_readings_never_replaces_a_bigger_one(clients: Clients) -> None:
    readings = flight("rg1", 60)
    rows = [
        {"_id": f"rg1:{t.seq}", "drone_id": "rg1", "seq": t.seq, **t.model_dump()} for t in readings
    ]
    full = roll_minute("rg1", BASE, rows, None)
    part = roll_minute("rg1", BASE, rows[:10], None)
    assert clients.rollup_store.write([full]) == 1
    assert clients.rollup_store.write([part]) == 0
    assert minutes(clients, "rg1")["rg1:2026-11-23T12:00Z"]["readings"] == len(readings)


def test_a_rebuild_gives_the_documents_the_archiver_made_and_counts_alerts(
    clients: Clients,
) -> None:
    mongo_indexes.ensure_indexes(clients.db)
    readings = flight("rb1", 150)
    alert_at = BASE + timedelta(seconds=75)
    clients.alerts.apply(
        [AlertUpdate("rb1:low_battery:1", "rb1", "low_battery", "warning", alert_at, alert_at)]
    )
    a = build_archiver(clients, "rollups")
    a.setup()
    a.archive(messages(readings))
    clients.rollups.roll_due(force=True)
    made = minutes(clients, "rb1")
    assert [d["alerts"] for _, d in sorted(made.items())] == [0, 1, 0]
    clients.db.rollups_minute.delete_many({})
    clients.db.rollups_hour.delete_many({})
    seen: list[tuple[int, int]] = []
    assert (
        clients.rollups.rebuild(BASE, BASE + timedelta(hours=1), lambda d, n: seen.append((d, n)))
        == 3
    )
    assert minutes(clients, "rb1") == made
    assert seen[-1] == (3, 3)


def test_retention_makes_ttl_indexes_changes_them_and_mongodb_removes_old_history(
    clients: Clients,
) -> None:
    db = clients.db

    def ttl(collection: str) -> int | None:
        [ix] = [i for i in db[collection].list_indexes() if dict(i["key"]) == {"start": 1}]
        return ix.get("expireAfterSeconds")

    ensure_retention(db, HistoryConfig(raw_days=7, minute_days=90))
    assert (ttl("telemetry"), ttl("rollups_minute")) == (7 * 86400, 90 * 86400)
    ensure_retention(db, HistoryConfig(raw_days=3, minute_days=30))
    assert (ttl("telemetry"), ttl("rollups_minute")) == (3 * 86400, 30 * 86400)
    ensure_retention(db, HistoryConfig(expire=False))
    assert (ttl("telemetry"), ttl("rollups_minute")) == (None, None)

    # The server's own TTL monitor removes the buckets older than raw_days (real time: the
    # monitor reads the server's clock) and keeps the rest.
    ensure_retention(db, HistoryConfig(raw_days=2))
    now = datetime.now(UTC)

    def at(ts: datetime, seq: int) -> Telemetry:
        return validate_telemetry(
            {"drone_id": "rt1", "seq": seq, "ts": int(ts.timestamp() * 1000), "battery_pct": 50}
        )

    clients.telemetry.store(group_readings([at(now - timedelta(days=3), 1), at(now, 2)]))
    deadline = time.monotonic() + 90
    while clients.telemetry.count_for("rt1") == 2 and time.monotonic() < deadline:
        time.sleep(1)
    assert clients.telemetry.reading_ids() == ["rt1:2"]


@pytest.fixture
def kept(make_settings: Callable[..., Settings]) -> Iterator[Clients]:
    """Clients with the default retention (raw readings 7 days, minutes 90)."""
    c = Clients(make_settings(history={}))
    yield c
    c.close()


def test_the_telemetry_api_serves_the_finest_level_still_kept(kept: Clients) -> None:
    clients = kept
    mongo_indexes.ensure_indexes(clients.db)
    a = build_archiver(clients, "rollups")
    a.setup()
    a.archive(messages(flight("ra1", 130)))
    clients.rollups.roll_due(force=True)
    clients.clock = ManualClock(BASE + timedelta(days=30))  # type: ignore[misc]
    api = api_client(clients)

    def get(**query: str) -> dict[str, Any]:
        resp = api.get("/api/v1/drones/ra1/telemetry", query_string=query)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()  # type: ignore[no-any-return]

    since = (BASE - timedelta(minutes=1)).isoformat()
    body = get(since=since)
    assert body["level"] == "minute" and body["count"] == 3
    assert [i["readings"] for i in body["items"]] == [5, 30, 30]  # newest first
    assert set(body["items"][0]) >= {"start", "end", "distance_m", "status_s", "energy_wh"}
    clients.clock = ManualClock(BASE + timedelta(days=200))  # type: ignore[misc]
    hourly = get(since=since)
    assert hourly["level"] == "hour" and [i["readings"] for i in hourly["items"]] == [65]
    raw = get(since=since, level="raw", limit="5")
    assert raw["level"] == "raw" and raw["count"] == 5
    clients.clock = ManualClock(BASE + timedelta(days=1))  # type: ignore[misc]
    assert get(since=since)["level"] == "raw"
    bad = api.get("/api/v1/drones/ra1/telemetry", query_string={"level": "day"})
    assert bad.status_code == 400 and "level" in str(bad.get_json())


def test_the_cli_rebuilds_a_window_and_shows_what_history_holds(clients: Clients) -> None:
    clients.telemetry.store(group_readings(flight("rl1", 90)))
    s = clients.settings
    env = cli_env(s)
    runner = CliRunner()
    args = ["history", "rollup", "--since", "2026-11-23T11:00", "--until", "2026-11-23T13:00"]
    done = runner.invoke(cli, args, env=env)
    assert done.exit_code == 0, done.output
    assert "2 drone-minutes" in done.output
    assert set(minutes(clients, "rl1")) == {"rl1:2026-11-23T12:00Z", "rl1:2026-11-23T12:01Z"}
    status = runner.invoke(cli, ["history", "status"], env=env)
    assert status.exit_code == 0 and "minute rollups" in status.output
    assert "2026-11-23 12:00" in status.output
    backwards = runner.invoke(cli, [*args[:3], "2026-11-24", "--until", "2026-11-23"], env=env)
    assert backwards.exit_code == 2 and "before --until" in backwards.output


def test_an_open_hour_is_summed_up_every_few_minutes_and_once_closed(clients: Clients) -> None:
    mongo_indexes.ensure_indexes(clients.db)
    clock = ManualClock(BASE + timedelta(minutes=3))
    clients.clock = clock  # type: ignore[misc]
    a = build_archiver(clients, "rollups")
    a.setup()
    a.archive(messages(flight("rh1", 120)))
    assert clients.rollups.roll_due(force=True) == 2  # both minutes closed
    assert len(minutes(clients, "rh1")) == 2
    assert list(clients.db.rollups_hour.find({"drone_id": "rh1"})) == []  # open, just marked
    clock.advance(HOUR_EVERY_S + 1)
    clients.rollups.roll_due(force=True)
    [hour] = list(clients.db.rollups_hour.find({"drone_id": "rh1"}))
    assert hour["readings"] == 60
    assert clients.rollup_store.pending("hour", BASE + timedelta(days=1), 10) == []


def test_a_drone_on_a_pad_reporting_every_few_minutes_has_its_time_counted(
    clients: Clients,
) -> None:
    mongo_indexes.ensure_indexes(clients.db)
    docked = [
        validate_telemetry(
            {
                "drone_id": "rp1",
                "seq": i,
                "ts": BASE_MS + i * 300_000,
                "battery_pct": 40 + i,
                "status": "charging",
            }
        )
        for i in range(5)
    ]
    a = build_archiver(clients, "rollups")
    a.setup()
    a.archive(messages(docked[:2]))
    clients.rollups.roll_due(force=True)
    a.archive(messages(docked[2:]))  # later passes find the step from minutes rolled before
    clients.rollups.roll_due(force=True)
    docs = minutes(clients, "rp1")
    assert len(docs) == 5
    assert sum(d["status_s"].get("charging", 0) for d in docs.values()) == 4 * 300
    [hour] = list(clients.db.rollups_hour.find({"drone_id": "rp1"}))
    assert hour["status_s"] == {"charging": 1200.0}
