"""The dashboard under load: a simulated fleet at 1 Hz, the page open in headless Chromium.

A fresh stack (gateway, processors, API) and ``skyhive simulate`` flying ``drones`` drones
between the BART stations, each reporting ``hz`` times a second over MQTT. Once the fleet is
on the map the page is watched for ``duration`` seconds:

- frame time: the gaps between ``requestAnimationFrame`` callbacks (a page that keeps up
  paints every ~16.7 ms; a long gap is a visible stutter);
- update lag: a reading's telemetry timestamp (set by the simulator when it publishes) to the
  animation frame that drew it on the map: broker, gateway, processor, pub/sub, SSE and the
  page together; and the part after the processor applied it (its ``updated_at``): pub/sub,
  the API's stream and the page;
- draw time: what one redraw of every drone costs the page's main thread;
- drone updates drawn per second against readings ingested per second (what the simulator
  got through the gateway), and how many drones the map holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyhive.adapters.live_state import FLEET_IDS
from skyhive.adapters.stream_partitions import stream_length
from skyhive.bench.browser import launch_chromium, sign_in
from skyhive.bench.stack import BenchStack, Progress, bench_stack, percentiles
from skyhive.embedded import free_port

# Records every animation frame's gap from then on (the page's own drawing is not touched).
_FRAME_PROBE = """() => {
  window.__frames = [];
  let last = performance.now();
  const tick = (now) => { window.__frames.push(now - last); last = now; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const layer = window.skyhive.map.drones;
  for (const samples of [layer.lagMs, layer.streamLagMs, layer.drawMs]) samples.length = 0;
  window.__drawn0 = layer.frames;
  window.__updates0 = layer.updatesDrawn;
}"""

_COLLECT = """() => ({
  frames: window.__frames,
  lag: window.skyhive.map.drones.lagMs,
  streamLag: window.skyhive.map.drones.streamLagMs,
  draw: window.skyhive.map.drones.drawMs,
  drones: window.skyhive.map.drones.drones.size,
  redraws: window.skyhive.map.drones.frames - window.__drawn0,
  updates: window.skyhive.map.drones.updatesDrawn - window.__updates0,
})"""


@dataclass
class DashboardReport:
    drones: int
    hz: float
    duration_s: float
    drones_on_map: int
    telemetry_per_s: float
    updates_per_s: float
    redraws_per_s: float
    frame_ms: dict[str, float] = field(default_factory=dict)
    lag_ms: dict[str, float] = field(default_factory=dict)
    # The part of the lag after the processor applied the reading: pub/sub, SSE, the page.
    stream_lag_ms: dict[str, float] = field(default_factory=dict)
    draw_ms: dict[str, float] = field(default_factory=dict)
    slow_frames_pct: float = 0.0  # frames over 50 ms


def run_dashboard_bench(
    drones: int,
    hz: float,
    duration: float,
    progress: Progress = print,
    screenshot: Path | None = None,
) -> DashboardReport:
    api_port = free_port()
    env = {"SKYHIVE_API_PORT": str(api_port), "SKYHIVE_DASHBOARD__TILES_URL": ""}
    roles = ("gateway", "processor", "urgent", "api")
    with bench_stack(roles, "amqtt", progress, extra_env=env) as bs:
        warmup = 20.0
        bs.spawn(
            "simulate",
            *("--drones", str(drones), "--rate", str(hz), "--seed", "7"),
            *("--duration", str(warmup + duration + 10)),
        )
        progress(f"{drones} simulated drones at {hz:g} Hz; waiting for them to be live ...")
        _wait_for_fleet(bs, drones, warmup)
        return _measure(
            bs, f"http://127.0.0.1:{api_port}", drones, hz, duration, progress, screenshot
        )


def _wait_for_fleet(bs: BenchStack, drones: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        seen = int(bs.clients.redis_text.scard(FLEET_IDS))
        if seen >= drones:
            return
        time.sleep(0.5)
    raise SystemExit(f"benchmark setup failed: {seen} of {drones} drones live after {timeout:g}s")


def _measure(
    bs: BenchStack,
    url: str,
    drones: int,
    hz: float,
    duration: float,
    progress: Progress,
    screenshot: Path | None,
) -> DashboardReport:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            sign_in(page, url, bs.api_key, timeout_ms=30_000)  # through the login page
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            page.wait_for_timeout(3000)  # the stream flowing, the first frames drawn
            progress(f"measuring the page for {duration:g}s ...")
            stream, parts = bs.settings.telemetry_stream, bs.settings.partitioned_streams()
            ingested = stream_length(bs.clients.redis_text, stream, parts)
            page.evaluate(_FRAME_PROBE)
            page.wait_for_timeout(duration * 1000)
            data: dict[str, Any] = page.evaluate(_COLLECT)
            ingested = stream_length(bs.clients.redis_text, stream, parts) - ingested
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    frames = [float(f) for f in data["frames"]]
    lag = [float(v) for v in data["lag"]]
    return DashboardReport(
        drones=drones,
        hz=hz,
        duration_s=duration,
        drones_on_map=int(data["drones"]),
        telemetry_per_s=round(ingested / duration, 1),
        updates_per_s=round(int(data["updates"]) / duration, 1),
        redraws_per_s=round(int(data["redraws"]) / duration, 1),
        frame_ms=percentiles(frames),
        lag_ms=percentiles(lag),
        stream_lag_ms=percentiles([float(v) for v in data["streamLag"]]),
        draw_ms=percentiles([float(v) for v in data["draw"]]),
        slow_frames_pct=round(100 * sum(f > 50 for f in frames) / max(len(frames), 1), 2),
    )
