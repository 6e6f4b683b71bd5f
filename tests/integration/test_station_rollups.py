"""Station rollups against the embedded MongoDB: deliveries made through the real service and
record repository, their hours recomputed into ``station_hours`` (``services/station_rollups``),
the same documents however often and however the passes overlap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from billing_data import order, world

from manual_clock import ManualClock
from skyhive.domain.deliveries import delivered_fields
from skyhive.wiring import Clients

H10 = datetime(2026, 10, 12, 10, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return H10 + timedelta(minutes=minutes)


def stored(clients: Clients) -> dict[str, dict[str, Any]]:
    return {str(d.pop("_id")): d for d in clients.db.station_hours.find()}


def make_history(clients: Clients) -> None:
    """At 12TH: one order delivered (ordered 10:05, assigned 10:20, picked up 10:30, delivered
    11:10), one re-dispatched then failed (10:50 → 11:05, back 11:10, 11:20, 11:30, failed
    11:40); at EMBR: one cancelled 10:15, one still waiting (ordered 11:59)."""
    svc = world(clients, "alice")
    repo = clients.deliveries
    one = order(svc, "alice", "12TH", at(5))
    repo.transition(one.id, "assigned", at(20), "t", {"drone_id": "d-1"})
    repo.transition(one.id, "picked_up", at(30), "t")
    repo.transition(one.id, "delivered", at(70), "t", delivered_fields(one, at(70)))
    two = order(svc, "alice", "12TH", at(50))
    repo.transition(two.id, "assigned", at(65), "t", {"drone_id": "d-2"})
    repo.transition(two.id, "pending", at(70), "drone went silent")
    repo.transition(two.id, "assigned", at(80), "t", {"drone_id": "d-3"})
    repo.transition(two.id, "picked_up", at(90), "t")
    repo.transition(two.id, "failed", at(100), "t")
    three = order(svc, "alice", "EMBR", at(10))
    repo.transition(three.id, "cancelled", at(15), "t")
    order(svc, "alice", "EMBR", at(119))


def test_a_rebuild_writes_each_station_hour_whole_and_again_the_same(clients: Clients) -> None:
    make_history(clients)
    rollups = clients.station_rollups
    assert rollups.rebuild(H10, at(120)) == 4
    docs = stored(clients)
    assert sorted(docs) == [
        "12TH:2026-10-12T10Z",
        "12TH:2026-10-12T11Z",
        "EMBR:2026-10-12T10Z",
        "EMBR:2026-10-12T11Z",
    ]
    a10, a11 = docs["12TH:2026-10-12T10Z"], docs["12TH:2026-10-12T11Z"]
    assert a10["station_id"] == "12TH" and a10["hour"] == H10  # a date, not text
    assert (a10["orders"], a10["assignments"], a10["pickups"]) == (2, 1, 1)
    assert a10["mean_wait_s"] == 15 * 60 and a10["wait_sum_s"] == 15 * 60
    assert (a11["orders"], a11["assignments"], a11["redispatches"]) == (0, 1, 1)
    assert (a11["pickups"], a11["deliveries"], a11["failures"]) == (1, 1, 1)
    assert a11["delivery_time_sum_s"] == 65 * 60 and a11["mean_wait_s"] == 15 * 60
    e10, e11 = docs["EMBR:2026-10-12T10Z"], docs["EMBR:2026-10-12T11Z"]
    assert (e10["orders"], e10["cancellations"], e11["orders"]) == (1, 1, 1)
    assert e11["mean_wait_s"] is None

    assert rollups.rebuild(H10, at(120)) == 4
    assert stored(clients) == docs
    # Overlapping windows recompute whole hours: the same figures.
    rollups.rebuild(at(30), at(61))
    rollups.rebuild(H10 - timedelta(hours=3), H10 + timedelta(hours=5))
    assert stored(clients) == docs


def test_a_rebuild_leaves_in_its_window_only_what_the_records_say(clients: Clients) -> None:
    make_history(clients)
    clients.db.station_hours.insert_many(
        [
            {"_id": "OLD:2026-10-12T11Z", "station_id": "OLD", "hour": at(60), "orders": 9},
            {"_id": "OLD:2026-10-12T13Z", "station_id": "OLD", "hour": at(180), "orders": 9},
        ]
    )
    clients.station_rollups.rebuild(H10, at(120))
    docs = stored(clients)
    assert "OLD:2026-10-12T11Z" not in docs  # in the window, backed by no record
    assert docs["OLD:2026-10-12T13Z"]["orders"] == 9  # outside it: left alone
    assert len(docs) == 5


def test_refresh_recomputes_the_hours_since_its_last_pass(clients: Clients) -> None:
    make_history(clients)
    clients.__dict__["clock"] = ManualClock(at(75))  # 11:15
    rollups = clients.station_rollups
    assert rollups.refresh() == 4  # first pass: the catch-up hours, up to the current one
    first = stored(clients)
    assert first["12TH:2026-10-12T10Z"]["orders"] == 2
    assert first["12TH:2026-10-12T11Z"]["deliveries"] == 1
    assert first["EMBR:2026-10-12T11Z"]["orders"] == 1  # the one ordered at 11:59

    # A step dated in the previous hour, written late (another process's clock), is counted at
    # the next pass.
    late = order(clients.delivery_service, "alice", "EMBR", at(119))
    clients.deliveries.transition(late.id, "cancelled", at(119.5), "t")
    written = rollups.refresh(at(121))  # 12:01: hours 11 and 12
    assert written == 2  # 12TH and EMBR at 11:00 (nothing yet at 12:00)
    assert stored(clients)["EMBR:2026-10-12T11Z"]["cancellations"] == 1
    assert stored(clients)["EMBR:2026-10-12T11Z"]["orders"] == 2
