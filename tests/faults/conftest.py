"""What the fault-injection cases share: `skyhive up` with insecure devices (one load client
may publish as any drone), finding its processes, reading history, recording figures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from e2e.harness import Up
from skyhive.adapters.telemetry_repo import TelemetryRepo


@pytest.fixture
def up_env() -> dict[str, str]:
    """Extra environment for `up` in a case (override it in a test module)."""
    return {}


@pytest.fixture
def up(tmp_path: Path, up_env: dict[str, str]) -> Iterator[Up]:
    u = Up(tmp_path / "data", env={"SKYHIVE_INSECURE_DEVICES": "true", **up_env})
    u.start()
    yield u
    if u.proc is not None and u.proc.poll() is None:
        u.stop()


def stack_file(up: Up) -> dict[str, Any]:
    """The running stack's servers (``mongodb_uri``, ``redis_url``, ...)."""
    return dict(json.loads((up.data_dir / "run" / "stack.json").read_text()))


def record_figures(tmp_path: Path, figures: dict[str, Any]) -> None:
    """Print a case's figures and append them to ``<basetemp>/fault-figures.jsonl``, the
    source of docs/benchmarks.md's table."""
    print(json.dumps(figures))
    with open(tmp_path.parent / "fault-figures.jsonl", "a") as f:
        f.write(json.dumps(figures) + "\n")


def history(up: Up) -> list[str]:
    """The ids (``drone:seq``) of the load's readings in MongoDB history, duplicates kept."""
    client: MongoClient[dict[str, object]] = MongoClient(
        stack_file(up)["mongodb_uri"], serverSelectionTimeoutMS=2000, tz_aware=True
    )
    try:
        return TelemetryRepo(client["skyhive"]).reading_ids("^fault-")
    finally:
        client.close()
