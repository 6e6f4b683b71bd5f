"""A broker `kill -9` with a backlog queued for a stopped gateway: what reaches the bus.

``crash_under_backlog`` (skyhive.bench.durability, also behind `skyhive bench durability
--what broker-crash`; docs/benchmarks.md, "Durability", has the figures) creates the
gateway's persistent session, stops the gateway, publishes N QoS 1 readings, kills the broker
(SIGKILL) ``wait_s`` after the last PUBACK, restarts it on its data and starts the gateway
again. The test holds Mosquitto, with the persistence SkyHive configures (saved every
second), to its documented guarantee: a backlog older than the autosave interval survives
the crash. Mosquitto is installed by `make test`; without it the test fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skyhive.bench.durability import crash_under_backlog
from skyhive.domain.device_access import MOSQUITTO_AUTOSAVE_S
from skyhive.settings import Settings

pytestmark = pytest.mark.mqtt  # a broker of its own


def test_mosquitto_keeps_a_saved_backlog_across_kill_9(settings: Settings, tmp_path: Path) -> None:
    acked, on_bus = crash_under_backlog(
        "mosquitto", settings, tmp_path, 2000, wait_s=MOSQUITTO_AUTOSAVE_S + 1.5
    )
    assert acked == 2000
    assert on_bus == acked
