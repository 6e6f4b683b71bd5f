"""`skyhive up` restarts a dead embedded server on its port and data (issue 12, "Servers under
supervision"): redis-server, the MongoDB-wire server and the MQTT broker, each killed with
SIGKILL.

While a server is dead, `up` is held still (SIGSTOP), so /readyz is seen naming it whatever the
restart's speed, and the killed server is left a zombie with a stale pid file, as a slow
supervisor would find it; then `up` goes on, and must reap it, clean up and restart it. The
roles must reconnect: a reading published after the restart reaches live state and history.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from e2e.harness import Up, alive, exists, server_markers, server_pid, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
BASE_MS = 1795428000000
DRONE = "srv-1"
_seq = itertools.count(1)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    u = Up(tmp_path_factory.mktemp("e2e-restarts") / "data")
    u.start()
    yield u
    if u.proc and u.proc.poll() is None:
        u.stop()


@pytest.fixture(scope="module")
def login(up: Up) -> tuple[str, str]:
    out = up.run("drones", "register", DRONE, "--home-station", "12TH").splitlines()
    assert out[-3] == f"MQTT username: {DRONE}", out
    return DRONE, out[-1]


def publish(port: int, seq: int, login: tuple[str, str]) -> None:
    body = {
        "seq": seq,
        "ts": BASE_MS + seq * 1000,
        "battery_pct": 90.0,
        "lat": 37.80 + seq * 1e-5,
        "lon": -122.27,
        "alt_m": 80.0,
        "status": "in_flight",
    }
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"e2e-{uuid.uuid4().hex[:8]}")
    c.username_pw_set(*login)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        c.publish(f"skyhive/drones/{DRONE}/telemetry", orjson.dumps(body), qos=1).wait_for_publish(
            10
        )
    finally:
        c.disconnect()
        c.loop_stop()


def live_seq(up: Up) -> int:
    status, body = up.answer(f"/api/v1/drones/{DRONE}")
    return int(body["seq"]) if status == 200 else 0


def history_seqs(up: Up) -> list[int]:
    return [h["seq"] for h in up.get(f"/api/v1/drones/{DRONE}/telemetry?limit=500")["items"]]


def flows(up: Up, login: tuple[str, str], timeout: float = 40.0) -> list[int]:
    """Publish a reading every few seconds until one reaches live state (after a broker
    restart, the gateway must first be back and subscribed), then wait for it in history;
    the seqs published, the last one through."""
    deadline = time.monotonic() + timeout
    sent: list[int] = []
    while True:
        sent.append(next(_seq))
        publish(up.mqtt_port, sent[-1], login)
        try:
            wait_for(lambda s=sent[-1]: live_seq(up) >= s, timeout=3, what=f"reading {sent[-1]}")
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    wait_for(lambda: sent[-1] in history_seqs(up), timeout=max(5.0, deadline - time.monotonic()))
    return sent


def metric(text: str, name: str, process: str) -> float | None:
    """A server's sample of ``name`` in the exposition text (labels in any order)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and f'process="{process}"' in line:
            assert 'kind="server"' in line, line
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.parametrize("name", ["redis", "mongodb", "mqtt"])
def test_a_killed_server_is_restarted_on_its_port_with_its_data(
    up: Up, login: tuple[str, str], name: str
) -> None:
    assert up.proc is not None
    seq = flows(up, login)[-1]
    history = history_seqs(up)
    stack = (up.data_dir / "run" / "stack.json").read_text()
    pid = server_pid(*server_markers(up, name))
    restarts = metric(up.text("/metrics"), "skyhive_supervisor_restarts_total", name)

    up.proc.send_signal(signal.SIGSTOP)  # the supervisor is held still while the server is dead
    try:
        os.kill(pid, signal.SIGKILL)
        wait_for(
            lambda: (
                up.answer("/readyz")[0] == 503
                and up.answer("/readyz")[1]["checks"][name].startswith("error")
            ),
            timeout=15,
            what=f"/readyz 503 naming {name}",
        )
        status, body = up.answer("/readyz")
        assert exists(pid) and not alive(pid)  # a zombie until the supervisor reaps it
    finally:
        up.proc.send_signal(signal.SIGCONT)
    held = time.monotonic()
    print(f"\n{name}: /readyz {status} {body['checks']}")

    wait_for(lambda: up.status("/readyz") == 200, timeout=30, what="/readyz 200 again")
    ready_s = time.monotonic() - held
    assert not exists(pid), "the killed server was not reaped"
    assert (up.data_dir / "run" / "stack.json").read_text() == stack  # same ports
    new_pid = server_pid(*server_markers(up, name))
    assert new_pid != pid
    if name == "mongodb":
        assert (up.data_dir / "run" / "mongo.pid").read_text().strip() == str(new_pid)
    # Its data: live state (Redis, AOF) and history (MongoDB-wire, SQLite) from before.
    assert live_seq(up) >= seq
    assert set(history) <= set(history_seqs(up))

    started = time.monotonic()
    sent = flows(up, login)  # the roles reconnected: a new reading goes all the way
    resumed_s = time.monotonic() - started
    assert sent[-1] > seq
    # Not asserted here (the broker's part of issue 12): readings the restarted broker
    # acknowledged before the gateway was subscribed again.
    missing = sorted(set(sent) - set(history_seqs(up)))

    text = up.text("/metrics")
    assert metric(text, "skyhive_supervisor_restarts_total", name) == (restarts or 0) + 1
    assert metric(text, "skyhive_supervisor_process_up", name) == 1.0
    assert re.search(rf"{name} .*restarted on 127\.0\.0\.1:\d+ with its data", up.log_text())
    print(
        f"{name}: /readyz 200 {ready_s:.1f}s after `up` went on; new reading through in "
        f"{resumed_s:.1f}s; acknowledged but not in history: {missing}"
    )


@pytest.mark.parametrize("name", ["redis", "mongodb", "mqtt"])
def test_a_server_killed_under_a_running_supervisor_is_back_within_seconds(
    up: Up, login: tuple[str, str], name: str
) -> None:
    flows(up, login)
    pid = server_pid(*server_markers(up, name))
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not exists(pid), timeout=10, what="the killed server reaped")
    new_pid = 0

    def back() -> bool:
        nonlocal new_pid
        try:
            new_pid = server_pid(*server_markers(up, name))
        except AssertionError:  # not started yet
            return False
        return up.status("/readyz") == 200

    wait_for(back, timeout=30, what=f"{name} back")
    back_s = time.monotonic() - killed
    sent = flows(up, login)
    through_s = time.monotonic() - killed
    assert new_pid != pid
    assert back_s < 10  # restarted at once (it had run a while), so within a few seconds
    print(
        f"\n{name}: killed; /readyz 200 again after {back_s:.1f}s, a new reading live and in "
        f"history {through_s:.1f}s after the kill (published {len(sent)})"
    )
