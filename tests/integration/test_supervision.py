"""The supervisor's side of a dead server, on a real (tiny) TCP server process: restarted at
once on the same port after a long run, with a growing backoff while it keeps dying young,
its stale pid file removed, the dead process reaped, and the restarts counted where the
API's /metrics reads them (issue 12, "Servers under supervision")."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from skyhive.api.supervision_metrics import SupervisionCollector
from skyhive.embedded import Server, free_port, port_open
from skyhive.supervisor import Child, SupervisionRecord, WatchedServer, read_supervision

# Listens on ARGV[1] until killed, as a server does (SO_REUSEADDR, like redis-server does).
_TCP_SERVER = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
while True:
    c, _ = s.accept()
    c.close()
"""


def tiny_server(tmp_path: Path, port: int, argv: list[str] | None = None) -> Server:
    return Server(
        "tiny (test)",
        argv or [sys.executable, "-c", _TCP_SERVER, str(port)],
        "127.0.0.1",
        port,
        tmp_path / "tiny.log",
        pid_file=tmp_path / "tiny.pid",
    )


def kill(server: Server) -> int:
    assert server.proc is not None
    pid = server.proc.pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while port_open(server.host, server.port) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid


def zombie(pid: int) -> bool:
    stat = (Path("/proc") / str(pid) / "stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_dead_server_is_reaped_and_restarted_on_its_port(tmp_path: Path) -> None:
    port = free_port()
    server = tiny_server(tmp_path, port)
    server.start()
    watched = WatchedServer(server)
    try:
        pid = kill(server)
        assert zombie(pid)  # nobody reaped it yet
        server.pid_file.write_text(str(pid))  # type: ignore[union-attr]  # as nx-27017 leaves it
        watched.check(time.monotonic() + 60)  # it had run a while: restarted at once
        assert not (Path("/proc") / str(pid)).exists()  # reaped
        assert not server.pid_file.exists()  # type: ignore[union-attr]
        assert server.running() and server.proc is not None and server.proc.pid != pid
        assert port_open("127.0.0.1", port) and server.port == port
        assert watched.restarts == 1 and not watched.down
    finally:
        server.stop()


def test_a_server_that_keeps_dying_young_is_restarted_with_a_growing_backoff(
    tmp_path: Path,
) -> None:
    server = tiny_server(tmp_path, free_port())
    server.start()
    watched = WatchedServer(server)
    delays = []
    try:
        for _ in range(4):
            kill(server)
            died = time.monotonic()
            watched.check(died)  # dies young: scheduled, not restarted yet (but the first)
            delays.append(round(watched.next_start - died, 1))
            while not server.running():
                watched.check(time.monotonic())
                time.sleep(0.05)
            assert time.monotonic() >= watched.next_start
    finally:
        server.stop()
    assert delays == [0.0, 1.0, 2.0, 4.0]
    assert watched.restarts == 4


def test_a_server_that_cannot_start_is_tried_again_later(tmp_path: Path) -> None:
    port = free_port()
    server = tiny_server(tmp_path, port)
    server.start()
    watched = WatchedServer(server)
    kill(server)
    server.argv = [sys.executable, "-c", "raise SystemExit(3)"]  # it now fails at once
    now = time.monotonic()
    watched.check(now)
    assert watched.down and watched.restarts == 0
    assert watched.next_start > now  # not retried in a loop
    server.argv = [sys.executable, "-c", _TCP_SERVER, str(port)]
    try:
        while not server.running():
            watched.check(time.monotonic())
            time.sleep(0.05)
        assert watched.restarts == 1
    finally:
        server.stop()


def test_restarts_are_recorded_for_the_apis_metrics(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    server = tiny_server(tmp_path, free_port())
    server.start()
    watched = WatchedServer(server)
    role = Child("worker", [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ))
    record = SupervisionRecord(tmp_path)
    collector = SupervisionCollector()
    collector.data_dir = tmp_path
    try:
        role.start()
        record.update([watched], [role])
        assert read_supervision(tmp_path) == {
            "tiny": {"kind": "server", "restarts": 0, "up": True},
            "worker": {"kind": "role", "restarts": 0, "up": True},
        }
        kill(server)
        watched.check(time.monotonic() + 60)
        record.update([watched], [role])
        samples = {
            (s.name, s.labels["process"], s.labels["kind"]): s.value
            for family in collector.collect()
            for s in family.samples
        }
        assert samples[("skyhive_supervisor_restarts_total", "tiny", "server")] == 1.0
        assert samples[("skyhive_supervisor_process_up", "tiny", "server")] == 1.0
        assert samples[("skyhive_supervisor_process_up", "worker", "role")] == 1.0
        record.remove()
        assert all(not f.samples for f in collector.collect())  # no `up` running: no series
    finally:
        role.terminate()
        role.wait(10)
        server.stop()
