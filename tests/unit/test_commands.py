"""Commands to drones: the JSON every producer sends, read back by the model a drone parses
with, and the commands a drone refuses."""

from __future__ import annotations

import copy
import math
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from skyhive.domain.commands import (
    DeliverCommand,
    InvalidCommand,
    ReturnCommand,
    deliver_command,
    parse_command,
    return_command,
)
from skyhive.domain.stations import bart_stations

STATIONS = {s.code: s for s in bart_stations()}
ISSUED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _station(code: str) -> dict[str, Any]:
    s = STATIONS[code]
    return {"station": s.code, "lat": s.lat, "lon": s.lon}


# What drones have always been sent, field by field and in this order.
DELIVER_WIRE: dict[str, Any] = {
    "type": "deliver",
    "delivery_id": "dlv-1",
    "payload_kg": 2.2,
    "pickup": _station("12TH"),
    "destination": {"lat": 37.81, "lon": -122.25},
    "return_station": _station("MCAR"),
    "issued_at": "2026-01-02T03:04:05.678901Z",
}
RETURN_WIRE: dict[str, Any] = {
    "type": "return_to_station",
    "return_station": _station("LAKE"),
    "reason": "delivery dlv-1 cancelled",
    "issued_at": "2026-01-02T03:04:05.678901Z",
}


def test_a_deliver_command_is_sent_as_drones_expect_and_parses_back() -> None:
    cmd = deliver_command(
        "dlv-1", STATIONS["12TH"], (37.81, -122.25), STATIONS["MCAR"], ISSUED, 2.2
    )
    assert cmd.to_json() == orjson.dumps(DELIVER_WIRE)
    assert parse_command(cmd.to_json()) == cmd


def test_a_return_command_is_sent_as_drones_expect_and_parses_back() -> None:
    cmd = return_command(STATIONS["LAKE"], ISSUED, "delivery dlv-1 cancelled")
    assert cmd.to_json() == orjson.dumps(RETURN_WIRE)
    assert parse_command(cmd.to_json()) == cmd


def test_the_type_picks_the_model_and_unknown_fields_are_ignored() -> None:
    parsed = parse_command(orjson.dumps({**RETURN_WIRE, "priority": "high"}))
    assert isinstance(parsed, ReturnCommand)
    assert parsed.return_station.station == "LAKE"
    deliver = parse_command(orjson.dumps(DELIVER_WIRE))
    assert isinstance(deliver, DeliverCommand) and deliver.issued_at == ISSUED


def test_a_deliver_command_without_a_weight_carries_a_kilogram() -> None:
    wire = {k: v for k, v in DELIVER_WIRE.items() if k != "payload_kg"}
    parsed = parse_command(orjson.dumps(wire))
    assert isinstance(parsed, DeliverCommand) and parsed.payload_kg == 1.0


def _without(cmd: dict[str, Any], *path: str) -> dict[str, Any]:
    out = copy.deepcopy(cmd)
    target = out
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return out


def _with(cmd: dict[str, Any], value: object, *path: str) -> dict[str, Any]:
    out = copy.deepcopy(cmd)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


GOOD = DELIVER_WIRE


@pytest.mark.parametrize(
    ("cmd", "message"),
    [
        ({"type": "self_destruct"}, "unknown command type 'self_destruct'"),
        ({}, "unknown command type None"),
        ([GOOD], "command: Input should be an object"),
        (_without(GOOD, "delivery_id"), "delivery_id"),
        (_with(GOOD, "", "delivery_id"), "delivery_id"),
        (_with(GOOD, "x" * 129, "delivery_id"), "delivery_id"),
        (_without(GOOD, "pickup"), "pickup"),
        (_with(GOOD, 7, "pickup", "station"), "pickup.station"),
        (_with(GOOD, "", "pickup", "station"), "pickup.station"),
        (_with(GOOD, 95.0, "destination", "lat"), "destination.lat"),
        (_with(GOOD, -181, "destination", "lon"), "destination.lon"),
        (_with(GOOD, "37.8", "destination", "lat"), "destination.lat"),
        (_with(GOOD, True, "destination", "lon"), "destination.lon"),
        (_with(GOOD, math.nan, "return_station", "lon"), "return_station.lon"),  # sent as null
        (_with(GOOD, [1, 2], "destination"), "destination"),
        (_with(GOOD, "yesterday", "issued_at"), "issued_at"),
        (_without(RETURN_WIRE, "return_station"), "return_station"),
        (_with(RETURN_WIRE, 91, "return_station", "lat"), "return_station.lat"),
        (_with(GOOD, -1, "payload_kg"), "payload_kg"),
        (_with(GOOD, 0, "payload_kg"), "payload_kg"),
        (_with(GOOD, 1001, "payload_kg"), "payload_kg"),
        (_with(GOOD, "2", "payload_kg"), "payload_kg"),
    ],
)
def test_an_unusable_command_is_refused_saying_why(cmd: object, message: str) -> None:
    with pytest.raises(InvalidCommand, match="^" + re.escape(message)):
        parse_command(orjson.dumps(cmd))


def test_a_command_that_is_not_json_is_refused() -> None:
    with pytest.raises(InvalidCommand, match=r"^not JSON"):
        parse_command(b"{not json")
