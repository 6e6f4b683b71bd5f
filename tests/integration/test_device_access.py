"""Drones and services on the broker: the same access cases against the embedded amqtt (its
SkyHive plugin reading the credential store) and a real Mosquitto as `skyhive up` runs it (its
configuration, and the password and ACL files SkyHive generates from that store and refreshes
on a change). Then a hostile drone against the gateway, and the simulator flying each drone on
its own credentials."""

from __future__ import annotations

import queue
import random
import signal
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from manual_clock import ManualClock
from polling import wait_for
from skyhive.adapters.credentials_repo import DeviceVerifier
from skyhive.domain.commands import commands_topic
from skyhive.domain.device_access import Service
from skyhive.domain.fleet import DroneSpec
from skyhive.embedded import (
    BrokerAccess,
    Server,
    embedded_mosquitto,
    free_port,
    mosquitto_dir,
    mosquitto_server,
    mqtt_broker,
)
from skyhive.services.device_credentials import (
    CredentialConflict,
    MosquittoAuthFiles,
    MqttLogin,
    UnknownDrone,
    drone_credential,
    ensure_service_credentials,
    issue_drone_password,
    revoke_drone_password,
    simulator_passwords,
    verify_device,
    write_mosquitto_config,
)
from skyhive.settings import Settings
from skyhive.simulator import SimStats, SimulatorConfig, make_fleet, run_simulator
from skyhive.wiring import Clients
from skyhive.workers.gateway import mqtt_gateway

pytestmark = pytest.mark.mqtt  # brokers of its own

HOST = "127.0.0.1"
REFRESH_S = 0.5  # the amqtt plugin's poll for rotations, short for the test
SIM_PREFIX = "sim"
SIM_DRONES = 2
Message = tuple[str, bytes]


@dataclass
class Store:
    """A credential store with two drones, the services and the simulator's drones."""

    clients: Clients
    passwords: dict[str, str]
    services: dict[Service, MqttLogin]
    services_file: Path
    sim_file: Path
    sim_specs: list[DroneSpec] = field(default_factory=list)

    def login(self, name: str) -> tuple[str, str]:
        if name in self.passwords:
            return name, self.passwords[name]
        svc = self.services[Service(name)]
        return svc.username, svc.password


@pytest.fixture(scope="module")
def store(
    embedded_redis: str,
    redis_cluster_mode: bool,
    embedded_mongodb: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Store]:
    base = tmp_path_factory.mktemp("credentials")
    settings = Settings(
        mongodb_uri=embedded_mongodb,
        redis_url=embedded_redis,
        redis_cluster=redis_cluster_mode,
        mongodb_db=f"acl_{uuid.uuid4().hex[:10]}",
        data_dir=base,
    )
    clients = Clients(settings)
    try:
        for drone_id in ("d1", "d2", "d3"):
            clients.fleet.register(DroneSpec(drone_id=drone_id, home_station="12TH"))
        passwords = {d: issue_drone_password(clients, d) for d in ("d1", "d2", "d3")}
        services = ensure_service_credentials(clients, base / "mqtt-services.json")
        sim_specs = [d.spec for d in make_fleet(SIM_DRONES, 0, random.Random(1), SIM_PREFIX)]
        clients.fleet.ensure_registered(sim_specs)
        sim_file = base / "sim.json"
        simulator_passwords(clients, [s.drone_id for s in sim_specs], sim_file)
        yield Store(clients, passwords, services, base / "mqtt-services.json", sim_file, sim_specs)
    finally:
        clients.mongo_client.drop_database(settings.mongodb_db)
        clients.close()


@dataclass
class Broker:
    kind: str
    port: int
    server: Server
    reload: Callable[[], None]  # after the credentials changed (Mosquitto: regenerate + HUP)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def start_broker(kind: str, store: Store, data_dir: Path, insecure: bool) -> Broker:
    """``kind``: "amqtt"; "mosquitto", as `skyhive up` runs it; or "mosquitto-config", a
    Mosquitto with the files of `skyhive broker mosquitto-config`."""
    port = free_port(HOST)
    if kind == "amqtt":
        s = store.clients.settings
        access = BrokerAccess(s.mongodb_uri, s.mongodb_db, insecure, REFRESH_S)
        server = mqtt_broker(data_dir, HOST, port, access)
        server.start()
        return Broker(kind, port, server, lambda: None)
    if kind == "mosquitto":
        files = MosquittoAuthFiles(mosquitto_dir(data_dir), insecure)
        files.write(store.clients, now_ms())
        server = embedded_mosquitto(data_dir, HOST, port, insecure)
        server.start()

        def refresh() -> None:  # what `up`'s keeper does every half second
            assert files.refresh(store.clients, now_ms()), "the change was not seen"
            assert server.signal(signal.SIGHUP)  # the test then waits for the new rules

        return Broker(kind, port, server, refresh)
    files_ = write_mosquitto_config(store.clients, data_dir / "auth", insecure_devices=insecure)
    server = mosquitto_server(
        data_dir,
        HOST,
        port,
        password_file=files_.password_file,
        acl_file=files_.acl_file,
        allow_anonymous=insecure,
    )
    server.start()

    def reload() -> None:
        write_mosquitto_config(store.clients, data_dir / "auth", insecure_devices=insecure)
        assert server.signal(signal.SIGHUP)  # the test then waits for the new rules

    return Broker(kind, port, server, reload)


@pytest.fixture(scope="module", params=["amqtt", "mosquitto"])
def broker(
    request: pytest.FixtureRequest, store: Store, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    b = start_broker(request.param, store, tmp_path_factory.mktemp(request.param), False)
    yield b
    b.server.stop()


class Peer:
    """A paho client with an inbox; ``reason`` is the broker's answer to its CONNECT."""

    def __init__(
        self,
        port: int,
        login: tuple[str, str] | None,
        client_id: str = "",
        clean_session: bool = True,
    ) -> None:
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.answered = threading.Event()
        self.reason: ReasonCode | None = None
        self.granted: list[list[ReasonCode]] = []
        self.disconnects = 0
        self._subacks = threading.Event()
        cid = client_id or f"peer-{uuid.uuid4().hex[:8]}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean_session
        )
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, m: self.inbox.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(HOST, port)
        self.client.loop_start()
        assert self.answered.wait(10), "no CONNACK"

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self.reason = rc
        self.answered.set()
        if rc.is_failure:
            client.disconnect()  # no retries: one answer is what the test wants

    def _on_disconnect(self, *_args: object) -> None:
        self.disconnects += 1

    def _on_subscribe(
        self, _c: object, _u: object, _m: int, rcs: list[ReasonCode], _p: object
    ) -> None:
        self.granted.append(rcs)
        self._subacks.set()

    @property
    def accepted(self) -> bool:
        return self.reason is not None and not self.reason.is_failure

    def subscribe(self, *filters: str) -> list[ReasonCode]:
        self._subacks.clear()
        self.client.subscribe([(f, 1) for f in filters])
        assert self._subacks.wait(10), "no SUBACK"
        return self.granted[-1]

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def drain(self, until: Callable[[Message], bool], timeout: float = 10) -> list[Message]:
        """Messages received until one satisfies ``until`` (included), then whatever else
        arrives within a short grace period."""
        got: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"the marker never arrived; got {got}") from None
            got.append(msg)
            if until(msg):
                break
        time.sleep(0.3)  # the grace period: room for what should not come
        while not self.inbox.empty():
            got.append(self.inbox.get_nowait())
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers() -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(
        port: int, login: tuple[str, str] | None, client_id: str = "", clean_session: bool = True
    ) -> Peer:
        p = Peer(port, login, client_id, clean_session)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def marker(topic: str) -> Callable[[Message], bool]:
    return lambda m: m[0] == topic and m[1] == b"marker"


# -- the same cases on both brokers ---------------------------------------------------------------


def test_only_valid_credentials_get_in(
    broker: Broker, store: Store, peers: Callable[..., Peer]
) -> None:
    assert peers(broker.port, store.login("d1")).accepted
    assert peers(broker.port, store.login("gateway")).accepted
    for login in (
        ("d1", store.passwords["d2"]),  # another drone's password
        ("d1", "wrong"),
        ("nobody", "wrong"),
        ("skyhive.gateway", store.passwords["d1"]),
        None,  # anonymous
    ):
        peer = peers(broker.port, login)
        assert not peer.accepted, (broker.kind, login, peer.reason)


def test_a_drones_own_topics_work(broker: Broker, store: Store, peers: Callable[..., Peer]) -> None:
    gateway = peers(broker.port, store.login("gateway"))
    gateway.subscribe("skyhive/drones/+/telemetry", "skyhive/drones/+/events")
    d1 = peers(broker.port, store.login("d1"))
    assert not d1.subscribe(commands_topic("d1"))[0].is_failure
    d1.publish("skyhive/drones/d1/events", b"event")
    d1.publish("skyhive/drones/d1/telemetry", b"marker")
    got = gateway.drain(marker("skyhive/drones/d1/telemetry"))
    assert ("skyhive/drones/d1/events", b"event") in got

    dispatcher = peers(broker.port, store.login("dispatcher"))
    dispatcher.publish(commands_topic("d1"), b"marker")
    assert d1.drain(marker(commands_topic("d1"))) == [(commands_topic("d1"), b"marker")]


def test_a_drone_cannot_publish_as_another(
    broker: Broker, store: Store, peers: Callable[..., Peer]
) -> None:
    gateway = peers(broker.port, store.login("gateway"))
    gateway.subscribe("skyhive/drones/+/telemetry", "skyhive/drones/+/events")
    d2 = peers(broker.port, store.login("d2"))
    d2.subscribe(commands_topic("d2"))
    d1 = peers(broker.port, store.login("d1"))
    for topic in (
        "skyhive/drones/d2/telemetry",
        "skyhive/drones/d2/events",
        commands_topic("d2"),  # a drone cannot command another
        commands_topic("d1"),  # nor itself
    ):
        d1.publish(topic, b"forged")
    d1.publish("skyhive/drones/d1/telemetry", b"marker")
    got = gateway.drain(marker("skyhive/drones/d1/telemetry"))
    assert got == [("skyhive/drones/d1/telemetry", b"marker")], broker.kind
    assert d2.inbox.empty()


def test_a_drone_cannot_read_another_drones_commands(
    broker: Broker, store: Store, peers: Callable[..., Peer]
) -> None:
    d1 = peers(broker.port, store.login("d1"))
    d1.subscribe(commands_topic("d1"))
    for wanted in (
        commands_topic("d2"),
        "skyhive/drones/+/commands",  # wildcards: refused (amqtt) or filtered (Mosquitto)
        "skyhive/drones/#",
        "#",
        "skyhive/drones/+/telemetry",
        "$share/g/skyhive/drones/d2/commands",
    ):
        d1.subscribe(wanted)
    d2 = peers(broker.port, store.login("d2"))
    d2.subscribe(commands_topic("d2"))
    dispatcher = peers(broker.port, store.login("dispatcher"))
    dispatcher.publish(commands_topic("d2"), b"for d2")
    d2.publish("skyhive/drones/d2/telemetry", b"d2 reading")
    assert d2.drain(lambda m: m[1] == b"for d2") == [(commands_topic("d2"), b"for d2")]
    dispatcher.publish(commands_topic("d1"), b"marker")
    got = d1.drain(marker(commands_topic("d1")))
    assert {t for t, _ in got} == {commands_topic("d1")}, (broker.kind, got)


def test_services_get_what_they_need_and_no_more(
    broker: Broker, store: Store, peers: Callable[..., Peer]
) -> None:
    gateway = peers(broker.port, store.login("gateway"), "gw-shared")
    granted = gateway.subscribe(
        "$share/ingest/skyhive/drones/+/telemetry",
        "skyhive/drones/+/commands",  # refused (amqtt) or filtered (Mosquitto)
        "skyhive/drones/+/telemetry",  # amqtt has no shared subscriptions: for the marker
    )
    assert not granted[0].is_failure and not granted[2].is_failure, broker.kind
    dispatcher = peers(broker.port, store.login("dispatcher"))
    dispatcher.publish(commands_topic("d1"), b"command")
    dispatcher.publish("skyhive/drones/d1/telemetry", b"forged by the dispatcher")
    gateway.publish("skyhive/drones/d1/telemetry", b"forged by the gateway")
    d1 = peers(broker.port, store.login("d1"))
    d1.publish("skyhive/drones/d1/telemetry", b"marker")
    got = gateway.drain(marker("skyhive/drones/d1/telemetry"))
    assert set(got) == {("skyhive/drones/d1/telemetry", b"marker")}, (broker.kind, got)


def test_a_refused_client_cannot_disturb_another_clients_session(
    broker: Broker, store: Store, peers: Callable[..., Peer]
) -> None:
    """Client ids are not credentials: a CONNECT that is refused changes nothing, whatever
    client id it names (amqtt alone would take over, or with a clean session delete, the
    session of that id before refusing the newcomer)."""
    held = f"gw-held-{broker.kind}"
    gateway = peers(broker.port, store.login("gateway"), held, clean_session=False)
    gateway.subscribe("skyhive/drones/+/telemetry")
    for login, clean in [(None, True), (None, False), (("skyhive.gateway", "wrong"), True)]:
        assert not peers(broker.port, login, held, clean_session=clean).accepted
    if broker.kind == "amqtt":  # a real drone may not take the gateway's client id either
        assert not peers(broker.port, store.login("d1"), held).accepted
    d1 = peers(broker.port, store.login("d1"))
    d1.publish("skyhive/drones/d1/telemetry", b"marker")
    assert gateway.drain(marker("skyhive/drones/d1/telemetry"))
    assert gateway.disconnects == 0, broker.kind


def test_a_burst_published_just_before_disconnecting_is_not_lost(
    broker: Broker, store: Store, peers: Callable[..., Peer]
) -> None:
    """Every message the broker acknowledged is handed on, even if the drone leaves at once
    (amqtt alone would drop what it still had queued for the session)."""
    gateway = peers(broker.port, store.login("gateway"))
    gateway.subscribe("skyhive/drones/+/telemetry")
    d1 = peers(broker.port, store.login("d1"))
    infos = [d1.client.publish("skyhive/drones/d1/telemetry", b"%d" % i, qos=1) for i in range(200)]
    for info in infos:
        info.wait_for_publish(10)
    d1.client.disconnect()
    seen: set[bytes] = set()

    def all_seen(msg: Message) -> bool:
        seen.add(msg[1])
        return len(seen) == len(infos)

    gateway.drain(all_seen)
    assert seen == {b"%d" % i for i in range(200)}, broker.kind


def test_a_rotated_password_stops_working(
    broker: Broker, store: Store, peers: Callable[..., Peer]
) -> None:
    old = store.passwords["d3"]
    d3 = peers(broker.port, ("d3", old))
    assert d3.accepted
    gateway = peers(broker.port, store.login("gateway"))
    gateway.subscribe("skyhive/drones/+/telemetry")
    d3.publish("skyhive/drones/d3/telemetry", b"marker")
    gateway.drain(marker("skyhive/drones/d3/telemetry"))

    new = issue_drone_password(store.clients, "d3")
    store.passwords["d3"] = new
    broker.reload()
    wait_for(lambda: not peers(broker.port, ("d3", old)).accepted, "the old password refused")
    assert peers(broker.port, ("d3", new)).accepted
    if broker.kind == "mosquitto":
        # Mosquitto re-checks the clients it has on SIGHUP: the old connection is dropped.
        wait_for(lambda: d3.disconnects > 0, "the old connection dropped")
    if broker.kind == "amqtt":
        # The connection opened with the old password loses its rights within the refresh.
        d3_new = peers(broker.port, ("d3", new))

        def only_the_new_connection_gets_through() -> bool:
            d3.publish("skyhive/drones/d3/telemetry", b"after rotation")
            d3_new.publish("skyhive/drones/d3/telemetry", b"marker")
            got = gateway.drain(marker("skyhive/drones/d3/telemetry"))
            return got == [("skyhive/drones/d3/telemetry", b"marker")]

        wait_for(only_the_new_connection_gets_through, "rights revoked", timeout=REFRESH_S * 10)


@pytest.mark.parametrize("kind", ["amqtt", "mosquitto", "mosquitto-config"])
def test_insecure_devices_let_anonymous_clients_in_but_still_check_passwords(
    kind: str, store: Store, peers: Callable[..., Peer], tmp_path: Path
) -> None:
    b = start_broker(kind, store, tmp_path, insecure=True)
    try:
        anyone = peers(b.port, None)
        assert anyone.accepted
        anyone.subscribe("skyhive/drones/+/commands", "skyhive/drones/d2/telemetry")
        assert not peers(b.port, ("d1", "wrong")).accepted
        d1 = peers(b.port, store.login("d1"))
        d1.publish("skyhive/drones/d2/telemetry", b"not d1's")  # d1 keeps its own rules
        anyone.publish("skyhive/drones/d2/telemetry", b"anything")
        dispatcher = peers(b.port, store.login("dispatcher"))
        dispatcher.publish(commands_topic("d2"), b"marker")
        got = anyone.drain(marker(commands_topic("d2")))
        assert ("skyhive/drones/d2/telemetry", b"anything") in got, (kind, got)
        assert ("skyhive/drones/d2/telemetry", b"not d1's") not in got, (kind, got)
    finally:
        b.server.stop()


# -- a hostile drone against the gateway ----------------------------------------------------------


def reading(drone_id: str | None, seq: int) -> bytes:
    body: dict[str, object] = {
        "seq": seq,
        "ts": int(time.time() * 1000),
        "lat": 37.8,
        "lon": -122.27,
        "battery_pct": 80.0,
        "status": "in_flight",
    }
    if drone_id is not None:
        body["drone_id"] = drone_id
    return orjson.dumps(body)


def test_a_hostile_drone_is_refused_by_the_broker_and_dead_lettered_by_the_gateway(
    broker: Broker, store: Store, peers: Callable[..., Peer], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        mqtt_url=f"mqtt://{HOST}:{broker.port}", mqtt_services_file=store.services_file
    )
    clients = Clients(settings)
    gw = mqtt_gateway(settings, clients.ingest, client_id=f"gw-{uuid.uuid4().hex[:8]}")
    stop = threading.Event()
    thread = threading.Thread(target=gw.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: gw.connected, "the gateway subscribed")
        d1 = peers(broker.port, store.login("d1"))
        d1.publish("skyhive/drones/d2/telemetry", reading("d2", 1))  # refused by the broker
        d1.publish("skyhive/drones/d2/telemetry", reading(None, 2))
        d1.publish("skyhive/drones/d1/telemetry", reading("d2", 3))  # own topic, d2 in the body
        event = {"drone_id": "d2", "ts": 1, "delivery_id": "x", "event": "delivered"}
        d1.publish("skyhive/drones/d1/events", orjson.dumps(event))
        d1.publish("skyhive/drones/d1/telemetry", reading(None, 4))  # its own, honestly
        deadline = time.monotonic() + 10
        while gw.accepted + gw.rejected < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # kept: room for a fourth message, were one let through
        assert (gw.accepted, gw.rejected) == (1, 2), broker.kind
        [(_, fields)] = clients.redis_bytes.xrange(settings.telemetry_stream)
        assert fields[b"k"] == b"d1" and orjson.loads(fields[b"v"])["seq"] == 4
        assert clients.redis_bytes.xlen(settings.events_stream) == 0
        letters = clients.deadletters.list()
        assert {d["source"] for d in letters} == {
            "mqtt:skyhive/drones/d1/telemetry",
            "mqtt:skyhive/drones/d1/events",
        }
        for d in letters:
            assert "drone_id 'd2' does not match topic drone id 'd1'" in d["reason"], d
    finally:
        stop.set()
        thread.join(10)
        clients.close()


# -- the simulator --------------------------------------------------------------------------------


def test_the_simulator_flies_each_drone_on_its_own_credentials(
    broker: Broker, store: Store, peers: Callable[..., Peer]
) -> None:
    gateway = peers(broker.port, store.login("gateway"))
    gateway.subscribe("skyhive/drones/+/telemetry", "skyhive/drones/+/events")
    asked: list[list[str]] = []

    def logins(specs: list[DroneSpec]) -> dict[str, str]:
        ids = [s.drone_id for s in specs]
        asked.append(ids)
        return simulator_passwords(store.clients, ids, store.sim_file)  # kept: no rotation

    config = SimulatorConfig(
        drones=SIM_DRONES, rate_hz=5.0, seed=1, id_prefix=SIM_PREFIX, autonomous_legs=False
    )
    stop = threading.Event()
    results: list[SimStats | BaseException] = []

    def simulate() -> None:
        try:
            results.append(run_simulator(config, HOST, broker.port, stop, logins=logins))
        except BaseException as exc:
            results.append(exc)

    sim = threading.Thread(target=simulate, daemon=True)
    sim.start()
    try:
        ids = [s.drone_id for s in store.sim_specs]
        seen: set[str] = set()
        deadline = time.monotonic() + 20
        while seen != set(ids) and time.monotonic() < deadline:
            try:
                topic, _ = gateway.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.add(topic.split("/")[2])
        assert seen == set(ids), (broker.kind, seen, results)
    finally:
        stop.set()
        sim.join(30)
    (stats,) = results
    assert isinstance(stats, SimStats), stats
    assert stats.published > 0 and stats.acked == stats.published
    assert asked == [ids]


# -- the service functions ------------------------------------------------------------------------


def test_verify_device_is_cached_and_sees_rotation_and_revocation(store: Store) -> None:
    clients = store.clients
    clients.fleet.register(DroneSpec(drone_id="d4", home_station="12TH"))
    old = issue_drone_password(clients, "d4")
    assert verify_device(clients, "d4", old)
    gateway = store.services[Service.gateway]
    for username, password in [
        ("d4", "wrong"),
        ("d4", ""),
        ("nobody", old),
        (gateway.username, gateway.password),  # a service is not a device
    ]:
        assert not verify_device(clients, username, password), username
    with pytest.raises(UnknownDrone):
        issue_drone_password(clients, "never-registered")

    clock = ManualClock()
    verifier = DeviceVerifier(clients.credentials, ttl_s=2.0, clock=clock)
    assert verifier.verify("d4", old)
    new = issue_drone_password(clients, "d4")
    assert verifier.verify("d4", old)  # cached: a rotation takes up to the refresh time
    clock.advance(2.5)
    assert not verifier.verify("d4", old) and verifier.verify("d4", new)
    assert revoke_drone_password(clients, "d4") and not revoke_drone_password(clients, "d4")
    clock.advance(2.5)
    assert not verifier.verify("d4", new)
    cred = drone_credential(clients, "d4")
    assert cred is not None and not cred.active and cred.source == "operator"


def test_the_simulator_keeps_its_passwords_and_never_takes_a_real_drones(
    store: Store, tmp_path: Path
) -> None:
    ids = [s.drone_id for s in store.sim_specs]
    first = simulator_passwords(store.clients, ids, store.sim_file)
    assert simulator_passwords(store.clients, ids, store.sim_file) == first  # no rotation
    assert stat.S_IMODE(store.sim_file.stat().st_mode) == 0o600
    assert all(verify_device(store.clients, d, p) for d, p in first.items())
    with pytest.raises(CredentialConflict):
        simulator_passwords(store.clients, ["d1"], tmp_path / "other.json")
    with pytest.raises(UnknownDrone):
        simulator_passwords(store.clients, ["sim-unregistered"], tmp_path / "other.json")
    store.clients.fleet.register(DroneSpec(drone_id="spare-1", home_station="12TH"))
    kept = simulator_passwords(store.clients, ["spare-1"], tmp_path / "kept.json")
    lost = simulator_passwords(store.clients, ["spare-1"], tmp_path / "lost.json")
    assert kept["spare-1"] != lost["spare-1"]  # a simulator that lost its file gets new ones
    assert verify_device(store.clients, "spare-1", lost["spare-1"])
