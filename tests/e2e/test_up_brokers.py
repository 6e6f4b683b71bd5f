"""`skyhive up` on each embedded broker (issue 14, "The broker"): Mosquitto, the default where
it is installed (`make test` installs it), and amqtt, the fallback (SKYHIVE_BROKER=amqtt).

Either way the broker holds devices to their credentials as the store has them while `up`
runs: a drone nobody registered is refused; one registered through the API publishes, and
its readings are stored; a rotated password (API) and a revoked one (`skyhive drones
credentials --revoke`) stop working within the refresh (on Mosquitto an open connection is
dropped too). On Mosquitto that is `up` rewriting its password and ACL files and sending it
SIGHUP."""

from __future__ import annotations

import stat
import threading
import time
import uuid
from collections.abc import Iterator

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from e2e.harness import Up, wait_for
from skyhive.domain.device_access import MOSQUITTO_MAX_INFLIGHT, MOSQUITTO_MAX_QUEUED

pytestmark = pytest.mark.e2e
BASE_MS = 1795428000000
REFRESH_S = 2.0  # SKYHIVE_CREDENTIALS_REFRESH_S's default: the bound the test holds `up` to


@pytest.fixture(scope="module", params=["mosquitto", "amqtt"])
def up(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    u = Up(
        tmp_path_factory.mktemp(f"up-{request.param}") / "data", {"SKYHIVE_BROKER": request.param}
    )
    u.start()
    yield u
    if u.proc and u.proc.poll() is None:
        assert u.stop() == 0


class Drone:
    """A drone's MQTT connection: the broker's answer to its CONNECT, and whether the broker
    dropped it later."""

    def __init__(self, port: int, login: tuple[str, str] | None) -> None:
        self.answers: list[ReasonCode] = []
        self.dropped = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"e2e-broker-{uuid.uuid4().hex[:8]}"
        )
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.dropped.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(lambda: bool(self.answers), 10, "CONNACK")

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self.answers.append(rc)
        if rc.is_failure:
            client.disconnect()  # one answer is what the test wants: no retries

    @property
    def accepted(self) -> bool:
        return not self.answers[0].is_failure

    def publish(self, drone_id: str, seq: int) -> None:
        body = {
            "seq": seq,
            "ts": BASE_MS + seq * 1000,
            "battery_pct": 80.0,
            "lat": 37.8,
            "lon": -122.27,
        }
        topic = f"skyhive/drones/{drone_id}/telemetry"
        self.client.publish(topic, orjson.dumps(body), qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def accepted(up: Up, login: tuple[str, str] | None) -> bool:
    d = Drone(up.mqtt_port, login)
    try:
        return d.accepted
    finally:
        d.close()


def history(up: Up, drone_id: str) -> list[int]:
    return [h["seq"] for h in up.get(f"/api/v1/drones/{drone_id}/telemetry?limit=100")["items"]]


def test_up_names_its_broker_and_configures_it(up: Up, request: pytest.FixtureRequest) -> None:
    kind = request.node.callspec.params["up"]
    assert up.broker == kind
    conf = up.data_dir / "mosquitto" / "mosquitto.conf"
    if kind == "amqtt":
        assert not conf.exists()
        return
    lines = set(conf.read_text().splitlines())
    assert f"listener {up.mqtt_port} 127.0.0.1" in lines
    assert {"persistence true", "autosave_interval 1", "allow_anonymous false"} <= lines
    assert f"max_queued_messages {MOSQUITTO_MAX_QUEUED}" in lines
    assert f"max_inflight_messages {MOSQUITTO_MAX_INFLIGHT}" in lines
    for name in ("passwd", "acl", "mosquitto.conf"):
        assert stat.S_IMODE((up.data_dir / "mosquitto" / name).stat().st_mode) == 0o600
    passwd = (up.data_dir / "mosquitto" / "passwd").read_text()
    assert "skyhive.gateway:$7$" in passwd and "skyhive.dispatcher:$7$" in passwd


def test_the_broker_follows_the_credential_store(up: Up) -> None:
    drone_id = f"e2e-{up.broker}"
    assert not accepted(up, None)  # anonymous
    assert not accepted(up, (drone_id, "no-such-drone-yet"))  # not registered

    status, made = up.post("/api/v1/fleet/drones", {"drone_id": drone_id, "home_station": "12TH"})
    assert status == 201, made
    login = (drone_id, made["credentials"]["mqtt_password"])
    registered = time.monotonic()
    wait_for(lambda: accepted(up, login), timeout=REFRESH_S + 3, what="the new drone let in")
    print(f"\n{up.broker}: registered → let in after {time.monotonic() - registered:.2f}s")
    drone = Drone(up.mqtt_port, login)
    assert drone.accepted
    for seq in (1, 2, 3):
        drone.publish(drone_id, seq)
    wait_for(lambda: history(up, drone_id) == [3, 2, 1], 30, "the readings stored")
    assert up.get(f"/api/v1/drones/{drone_id}")["seq"] == 3

    status, rotated = up.post(f"/api/v1/fleet/drones/{drone_id}/credentials", {})
    assert status == 200, rotated
    new = (drone_id, rotated["mqtt_password"])
    wait_for(
        lambda: not accepted(up, login), timeout=REFRESH_S + 3, what="the old password refused"
    )
    wait_for(lambda: accepted(up, new), timeout=REFRESH_S + 3, what="the new password let in")
    if up.broker == "mosquitto":  # re-checked on SIGHUP: the old connection is dropped
        assert drone.dropped.wait(REFRESH_S + 3)
    drone.close()

    drone = Drone(up.mqtt_port, new)
    assert drone.accepted
    drone.publish(drone_id, 4)
    wait_for(lambda: history(up, drone_id)[0] == 4, 30, "the rotated drone's reading stored")
    up.run("drones", "credentials", drone_id, "--revoke")
    revoked = time.monotonic()
    wait_for(lambda: not accepted(up, new), timeout=REFRESH_S + 3, what="the revoked drone refused")
    print(f"{up.broker}: revoked → refused after {time.monotonic() - revoked:.2f}s")
    if up.broker == "mosquitto":  # (amqtt keeps the connection but allows it nothing)
        assert drone.dropped.wait(REFRESH_S + 3)
    drone.close()
    assert history(up, drone_id) == [4, 3, 2, 1]


def test_the_password_file_survives_a_restart_of_up(up: Up) -> None:
    """Stopped and started again on its data: the services sign in again (same passwords,
    same files), and a drone registered before the restart still gets in."""
    drone_id = f"e2e-kept-{up.broker}"
    status, made = up.post("/api/v1/fleet/drones", {"drone_id": drone_id, "home_station": "12TH"})
    assert status == 201, made
    login = (drone_id, made["credentials"]["mqtt_password"])
    wait_for(lambda: accepted(up, login), timeout=REFRESH_S + 3, what="the new drone let in")
    assert up.stop() == 0
    up.start()
    assert accepted(up, login)
    drone = Drone(up.mqtt_port, login)
    drone.publish(drone_id, 1)
    drone.close()
    wait_for(lambda: history(up, drone_id) == [1], 30, "a reading through the restarted stack")
