"""The benchmarks' CPU accounting reads /proc as the kernel writes it."""

from __future__ import annotations

import os
import time

from skyhive.bench.cpu import CpuMeter, cpu_seconds


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_cpu_seconds_of_this_process_grow_with_work() -> None:
    before = cpu_seconds(os.getpid())
    assert before is not None
    _burn(0.3)
    after = cpu_seconds(os.getpid())
    assert after is not None and 0.2 <= after - before <= 2.0


def test_a_process_that_is_gone_has_no_figure() -> None:
    assert cpu_seconds(2**22 + 12345) is None


def test_the_meter_reports_per_process_and_per_thousand_readings() -> None:
    meter = CpuMeter({"me": os.getpid(), "gone": 2**22 + 12345})
    meter.start()
    _burn(0.3)
    used = meter.stop()
    assert set(used) == {"me"} and 0.2 <= used["me"] <= 2.0
    per = meter.per_thousand(3000)
    assert per["me"] == round(used["me"] * 1000 / 3000 * 1000, 1)
    assert meter.per_thousand(0) == {}
