"""`skyhive up` runs as many processors and archivers as asked, and refuses several
processors where they would race (one Redis stream)."""

from __future__ import annotations

import pytest

from skyhive.embedded import EmbeddedError
from skyhive.settings import Settings
from skyhive.supervisor import ROLES, check_members, stack_roles


def test_one_of_each_role_by_default() -> None:
    assert stack_roles(Settings()) == {r: a for r, a in ROLES.items() if r != "mavlink"}
    assert check_members(Settings()) == []


def test_the_mavlink_gateway_runs_only_when_it_has_an_endpoint() -> None:
    roles = stack_roles(Settings(mavlink={"listen": "udp:0.0.0.0:14550"}))  # type: ignore[arg-type]
    assert roles == ROLES and roles["mavlink"] == ("mavlink", "gateway")


def test_processors_and_archivers_as_asked_each_named_apart() -> None:
    roles = stack_roles(Settings(processors=3, archivers=2, bus_partitions=8))
    assert [r for r in roles if r.startswith(("processor", "archiver"))] == [
        "processor", "processor-2", "processor-3", "archiver", "archiver-2",
    ]  # fmt: skip
    assert roles["processor-3"] == ROLES["processor"]  # the routine lane; one urgent lane
    assert roles["urgent"] == ROLES["urgent"] and "urgent-2" not in roles


def test_several_processors_on_one_redis_stream_are_refused() -> None:
    with pytest.raises(EmbeddedError, match="SKYHIVE_BUS_PARTITIONS"):
        check_members(Settings(processors=2))
    assert check_members(Settings(processors=2, bus_partitions=4)) == []


def test_several_archivers_on_one_stream_or_more_members_than_partitions_are_warned() -> None:
    [warning] = check_members(Settings(archivers=2))
    assert "buckets are written in more pieces" in warning
    [warning] = check_members(Settings(processors=5, bus_partitions=4))
    assert "1 will stand by" in warning
