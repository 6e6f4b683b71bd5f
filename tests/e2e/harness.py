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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyhive.adapters.http_json import request_json
from skyhive.embedded import free_port


class Up:
    """`skyhive up` on ``data_dir``. The parent's ``SKYHIVE_*`` variables are not passed on;
    ``env`` (e.g. short alert thresholds) is, to `up` and to the commands run beside it."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.api_port = free_port()
        self.mqtt_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKYHIVE_")}
        env.update(self.env)
        return env

    def start(self) -> None:
        env = self._env()
        self.log = open(self.data_dir.parent / f"up-{self.data_dir.name}.log", "ab")  # noqa: SIM115
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

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api_port}{path}"

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url(path), timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except OSError:
            return 0

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url(path), timeout=5) as r:
            return json.loads(r.read())

    def post(self, path: str, body: object) -> tuple[int, Any]:
        return request_json("POST", self.url(path), body)

    def skyhive(self, *args: str) -> subprocess.Popen[bytes]:
        """Another `skyhive` command beside the running stack (it finds the servers through
        the data dir's stack file)."""
        env = self._env()
        env["SKYHIVE_DATA_DIR"] = str(self.data_dir)
        return subprocess.Popen(
            [sys.executable, "-m", "skyhive", *args], env=env, stdout=self.log, stderr=self.log
        )

    def stop(self, sig: int = signal.SIGINT) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(60)
        self.log.close()
        return code


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
