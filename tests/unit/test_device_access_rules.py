"""Device and service MQTT access rules, and the hash format Mosquitto reads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from skyhive.domain.device_access import (
    Service,
    drone_grant,
    filter_covers,
    grant_for,
    hash_password,
    mosquitto_acl_file,
    mosquitto_password_file,
    new_password,
    service_grant,
    service_username,
    topic_matches,
    verify_password,
)


def test_a_hash_has_mosquittos_format_and_verifies_only_its_password() -> None:
    password = new_password()
    assert len(password) == 32
    encoded = hash_password(password)
    marker, alg, iterations, salt, digest = encoded.split("$")
    assert (marker, alg, iterations) == ("", "7", "101")
    assert len(salt) == 16 and len(digest) == 88  # 12 and 64 bytes, base64
    assert verify_password(password, encoded)
    assert not verify_password(password + "x", encoded)
    assert hash_password(password) != encoded  # a new salt each time


@pytest.mark.parametrize(
    "encoded",
    ["", "$6$abc$def", "$7$x$AAAA$AAAA", "$7$0$AAAA$AAAA", "$7$101$***$AAAA", "$7$99999999$A$A"],
)
def test_a_malformed_hash_verifies_nothing(encoded: str) -> None:
    assert not verify_password("secret", encoded)


def test_hashes_written_by_mosquitto_passwd_verify(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed (make mosquitto)")
    path = tmp_path / "passwd"
    subprocess.run([tool, "-c", "-b", str(path), "d1", "s3cret"], check=True)
    user, encoded = path.read_text().strip().split(":", 1)
    assert user == "d1" and verify_password("s3cret", encoded)
    assert not verify_password("s3cre", encoded)


def test_topic_matching() -> None:
    assert topic_matches("skyhive/drones/+/telemetry", "skyhive/drones/d1/telemetry")
    assert not topic_matches("skyhive/drones/+/telemetry", "skyhive/drones/d1/events")
    assert not topic_matches("skyhive/drones/+/telemetry", "skyhive/drones/d1/telemetry/x")
    assert topic_matches("skyhive/#", "skyhive/drones/d1/telemetry")
    assert filter_covers("skyhive/drones/+/telemetry", "skyhive/drones/d1/telemetry")
    assert filter_covers("skyhive/drones/+/telemetry", "skyhive/drones/+/telemetry")
    assert not filter_covers("skyhive/drones/d1/commands", "skyhive/drones/+/commands")
    assert not filter_covers("skyhive/drones/d1/commands", "skyhive/drones/d1/#")
    assert not filter_covers("skyhive/drones/+/telemetry", "#")


def test_a_drone_has_its_own_topics_only() -> None:
    g = drone_grant("d1")
    assert g.may_publish("skyhive/drones/d1/telemetry")
    assert g.may_publish("skyhive/drones/d1/events")
    assert not g.may_publish("skyhive/drones/d2/telemetry")
    assert not g.may_publish("skyhive/drones/d1/commands")  # it cannot command itself
    assert g.may_subscribe("skyhive/drones/d1/commands")
    for refused in (
        "skyhive/drones/d2/commands",
        "skyhive/drones/+/commands",
        "skyhive/drones/d1/#",
        "#",
        "$share/g/skyhive/drones/d1/commands",
        "skyhive/drones/d1/telemetry",
    ):
        assert not g.may_subscribe(refused), refused
    assert g.may_receive("skyhive/drones/d1/commands")
    assert not g.may_receive("skyhive/drones/d2/commands")


def test_services_have_what_their_role_needs() -> None:
    gw = service_grant(Service.gateway)
    assert gw.username == "skyhive.gateway"
    assert gw.may_subscribe("skyhive/drones/+/telemetry") and gw.may_subscribe(
        "skyhive/drones/+/events"
    )
    assert gw.may_subscribe("$share/ingest/skyhive/drones/+/telemetry")
    assert gw.may_subscribe("skyhive/drones/d7/events")
    assert not gw.may_subscribe("skyhive/drones/+/commands")
    assert not gw.may_subscribe("#") and not gw.may_subscribe("$share//skyhive/drones/+/events")
    assert not gw.may_publish("skyhive/drones/d1/telemetry")
    dispatcher = service_grant(Service.dispatcher)
    assert dispatcher.may_publish("skyhive/drones/d1/commands")
    assert not dispatcher.may_publish("skyhive/drones/d1/telemetry")
    assert not dispatcher.may_subscribe("skyhive/drones/d1/commands")


def test_stored_records_map_to_grants_and_nonsense_to_none() -> None:
    assert grant_for("d1", "drone", None) == drone_grant("d1")
    assert grant_for("skyhive.gateway", "service", "gateway") == service_grant(Service.gateway)
    assert grant_for("skyhive.gateway", "drone", None) is None  # '.' is never in a drone id
    assert grant_for("evil", "service", "gateway") is None
    assert grant_for("skyhive.root", "service", "root") is None


def test_mosquitto_files() -> None:
    h = hash_password("x")
    assert mosquitto_password_file([("d2", h), ("d1", h)]) == f"d1:{h}\nd2:{h}\n"
    with pytest.raises(ValueError):
        mosquitto_password_file([("a:b", h)])
    acl = mosquitto_acl_file([drone_grant("d1"), service_grant(Service.dispatcher)])
    assert "topic readwrite #" not in acl
    assert (
        "user d1\ntopic write skyhive/drones/d1/telemetry\ntopic write skyhive/drones/d1/events\n"
        "topic read skyhive/drones/d1/commands\n"
    ) in acl
    assert (
        f"user {service_username(Service.dispatcher)}\ntopic write skyhive/drones/+/commands\n"
        in acl
    )
    insecure = mosquitto_acl_file([drone_grant("d1")], insecure_devices=True)
    assert insecure.index("topic readwrite #") < insecure.index("user d1")
