"""Delivery lifecycle rules, request validation and the price estimate."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from skyhive.domain.deliveries import (
    TRANSITIONS,
    DeliveryRejected,
    DeliveryRequest,
    can_transition,
    check_serviceable,
)


def request(**changes: object) -> DeliveryRequest:
    body = {
        "customer_id": "cust-1",
        "pickup_station": "12TH",
        "destination": {"lat": 37.81, "lon": -122.26},
        "package": {"weight_kg": 1.2, "size": "small"},
        **changes,
    }
    return DeliveryRequest.model_validate(body)


def test_happy_path_and_forbidden_jumps() -> None:
    path = ["pending", "assigned", "picked_up", "in_transit", "delivered"]
    assert all(can_transition(a, b) for a, b in itertools.pairwise(path))
    assert not can_transition("pending", "delivered")
    assert not can_transition("picked_up", "cancelled")  # too late to cancel
    assert can_transition("assigned", "pending")  # re-dispatch
    for terminal in ("delivered", "failed", "cancelled"):
        assert TRANSITIONS[terminal] == frozenset()
        assert not can_transition(terminal, "pending")


def test_request_schema_errors() -> None:
    with pytest.raises(ValidationError):
        request(package={"weight_kg": 1, "size": "huge"})
    with pytest.raises(ValidationError):
        request(destination={"lat": 95, "lon": 0})
    with pytest.raises(ValidationError):
        request(order_id="has spaces")
    with pytest.raises(ValidationError):
        request(package={"weight_kg": "1", "size": "small"})


@pytest.mark.parametrize(
    ("known", "km", "max_kg", "field"),
    [
        (False, None, 5.0, "pickup_station"),
        (True, 12.5, 5.0, "destination"),
        (True, 2.0, 1.0, "package.weight_kg"),
    ],
)
def test_serviceability_names_the_field(
    known: bool, km: float | None, max_kg: float, field: str
) -> None:
    with pytest.raises(DeliveryRejected) as exc:
        check_serviceable(request(), known, km, 12.0, max_kg)
    assert exc.value.field == field


def test_at_the_limits_is_serviceable() -> None:
    check_serviceable(request(package={"weight_kg": 2.5, "size": "large"}), True, 12.0, 12.0, 2.5)


def test_a_timeline_step_is_never_dated_before_the_one_it_follows() -> None:
    from skyhive.adapters.delivery_records import _advanced

    picked = datetime(2026, 1, 5, 12, 0, 0, 238000, tzinfo=UTC)
    doc = {"timeline": [{"status": "picked_up", "at": picked, "note": ""}], "version": 3}
    earlier = picked - timedelta(milliseconds=1)  # another process's clock, a hair behind
    update = _advanced(doc, "in_transit", earlier, "en route", {})
    assert [t["at"] for t in update["timeline"]] == [picked, picked]
    assert update["updated_at"] == picked and update["version"] == 4
    later = picked + timedelta(seconds=5)
    assert _advanced(doc, "in_transit", later, "", {})["timeline"][-1]["at"] == later
