"""Shared helpers for the end-to-end tests: `skyhive up` as a subprocess, and waiting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from skyhive.adapters.http_json import request_json
from skyhive.embedded import free_port
from skyhive.services.api_keys import ADMIN_KEY_FILE


class Up:
    """`skyhive up` on ``data_dir``. The parent's ``SKYHIVE_*`` variables are not passed on;
    ``env`` (e.g. short alert thresholds) is, to `up` and to the commands run beside it.

    Every API call sends the admin key the first start left in the data dir (``key``), unless
    given another key, or ``key=""`` for none."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.api_port = free_port()
        self.mqtt_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.key: str | None = None  # the admin key, read from the data dir once up
        self.log_path = data_dir.parent / f"up-{data_dir.name}.log"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKYHIVE_")}
        # The tests fly at fixed past times, which retention's TTL indexes would remove
        # under them (a test of retention sets it back).
        env["SKYHIVE_HISTORY__EXPIRE"] = "false"
        env.update(self.env)
        return env

    def start(self) -> None:
        env = self._env()
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "skyhive",
                "up",
                "--data-dir",
                str(self.data_dir),
                "--api-port",
                str(self.api_port),
                "--mqtt-port",
                str(self.mqtt_port),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: self.status("/readyz") == 200, timeout=90, what="readyz 200")
        self.key = self.key_file.read_text().strip()

    @property
    def key_file(self) -> Path:
        return self.data_dir / ADMIN_KEY_FILE

    def log_text(self) -> str:
        """What `up` (and the commands beside it) printed so far, every start included."""
        return self.log_path.read_text(errors="replace")

    @property
    def broker(self) -> str:
        """The embedded broker the last start's banner names: "mosquitto" or "amqtt"."""
        text = self.log_text()
        line = text[text.rindex("  MQTT broker     : ") :].split("\n", 1)[0]
        return line.split(":", 1)[1].split()[0].lower()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api_port}{path}"

    def _request(self, path: str, key: str | None) -> urllib.request.Request:
        req = urllib.request.Request(self.url(path))
        key = self.key if key is None else key
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        return req

    def status(self, path: str, key: str | None = None) -> int:
        """The status of a GET (0 when nothing answers)."""
        try:
            with urllib.request.urlopen(self._request(path, key), timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            with e:  # an error answer holds the connection open until closed
                return int(e.code)
        except OSError:
            return 0

    def get(self, path: str, key: str | None = None) -> Any:
        """The JSON of a GET; an error status raises (``urllib.error.HTTPError``)."""
        try:
            with urllib.request.urlopen(self._request(path, key), timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            e.close()  # raised on with its status; its connection closed now, not at GC
            raise

    def answer(self, path: str, key: str | None = None) -> tuple[int, Any]:
        """The status and JSON of a GET, whatever the status (``(0, None)`` when nothing
        answers): /readyz says which dependency is down in its 503."""
        try:
            with urllib.request.urlopen(self._request(path, key), timeout=5) as r:
                return int(r.status), json.loads(r.read())
        except urllib.error.HTTPError as e:
            with e:  # an error answer holds the connection open until closed
                return int(e.code), json.loads(e.read() or b"null")
        except OSError:
            return 0, None

    def text(self, path: str) -> str:
        """The body of a GET as text (``/metrics``)."""
        with urllib.request.urlopen(self._request(path, None), timeout=5) as r:
            return str(r.read().decode())

    def post(self, path: str, body: object, key: str | None = None) -> tuple[int, Any]:
        return request_json("POST", self.url(path), body, key=self.key if key is None else key)

    def skyhive(self, *args: str) -> subprocess.Popen[bytes]:
        """Another `skyhive` command beside the running stack (it finds the servers through
        the data dir's stack file)."""
        env = self._env()
        env["SKYHIVE_DATA_DIR"] = str(self.data_dir)
        return subprocess.Popen(
            [sys.executable, "-m", "skyhive", *args], env=env, stdout=self.log, stderr=self.log
        )

    def run(self, *args: str) -> str:
        """A `skyhive` command beside the running stack, to completion; its stdout."""
        env = self._env()
        env["SKYHIVE_DATA_DIR"] = str(self.data_dir)
        done = subprocess.run(
            [sys.executable, "-m", "skyhive", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self, sig: int = signal.SIGINT) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(60)
        self.log.close()
        return code


def running(data_dir: Path, env: dict[str, str]) -> Iterator[Up]:
    """For a module's fixture: `up` started on ``data_dir`` with ``env``, stopped after."""
    u = Up(data_dir, env=env)
    u.start()
    yield u
    if u.proc and u.proc.poll() is None:
        u.stop()


def refusal(data_dir: Path, env: dict[str, str]) -> str:
    """What `up` says on stderr as it refuses to start with ``env`` (it must exit non-zero)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SKYHIVE_")}
    argv = [sys.executable, "-m", "skyhive", "up", "--data-dir", str(data_dir)]
    done = subprocess.run(
        argv, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    return done.stderr


def wait_for(cond: Callable[[], bool], timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} not met within {timeout}s")


def server_pid(*markers: str) -> int:
    """The pid of the one live process whose command line holds every marker (redis-server
    rewrites its own to ``redis-server HOST:PORT``, so match it by address)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            line = _cmdline(int(entry.name))
            if all(m.encode() in line for m in markers) and alive(int(entry.name)):
                found.append(int(entry.name))
    assert len(found) == 1, f"{markers}: {found}"
    return found[0]


def server_markers(up: Up, name: str) -> tuple[str, str]:
    """What tells an embedded server's process apart (``name``: redis, mongodb or mqtt): its
    program and its address or data dir."""
    if name == "redis":
        urls = json.loads((up.data_dir / "run" / "stack.json").read_text())
        return "redis-server", str(urls["redis_url"]).split("//", 1)[1].split("/", 1)[0]
    if name == "mqtt" and up.broker == "mosquitto":
        return "mosquitto", str(up.data_dir)  # mosquitto -c DATA/mosquitto/mosquitto.conf
    return {"mongodb": "nx_27017", "mqtt": "amqtt_broker"}[name], str(up.data_dir)


def _cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a zombie is dead but not yet reaped)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def exists(pid: int) -> bool:
    """Whether ``pid`` is still in the process table (alive, or a zombie nobody reaped)."""
    return (Path("/proc") / str(pid)).exists()


def processes_using(data_dir: Path) -> list[int]:
    """Pids whose command line or environment mentions the data dir (servers and children)."""
    needle = str(data_dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (
                needle in (entry / "cmdline").read_bytes()
                or needle in (entry / "environ").read_bytes()
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def role_pids(data_dir: Path, argv: tuple[str, ...]) -> list[int]:
    """Processes running ``python -m skyhive <argv>`` for this data dir."""
    want = ["-m", "skyhive", *argv]
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            env = Path(entry.path, "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [c.decode(errors="replace") for c in cmd if c]
        if args[1 : 1 + len(want)] != want:
            continue
        if f"SKYHIVE_DATA_DIR={data_dir}".encode() in env:
            found.append(int(entry.name))
    return found
