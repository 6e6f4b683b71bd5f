"""The stack a browser test drives (the API on a real port and the processor, run on demand),
and opening the dashboard in a browser."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from playwright.sync_api import Browser, ConsoleMessage, Page

from skyhive.adapters.http_json import request_json
from skyhive.bench.browser import sign_in
from skyhive.services.archiver import Archiver
from skyhive.services.processor import Processor
from skyhive.wiring import Clients

SCREENSHOTS = Path(__file__).parent / "screenshots"


@dataclass
class Stack:
    """The API on a real port over the test's stores, and the processor, run on demand.

    ``key`` is the operator's, who signs in to the dashboard (``open_dashboard``);
    ``admin_key`` is what the test itself sends to set the scene (customers, HTTP ingest) and
    to check the API's answers, unless given another key."""

    clients: Clients
    url: str
    processor: Processor
    archiver: Archiver
    key: str
    admin_key: str
    seq: dict[str, int] = field(default_factory=dict)

    def get(self, path: str, key: str | None = None) -> Any:
        req = urllib.request.Request(self.url + path)
        req.add_header("Authorization", f"Bearer {key or self.admin_key}")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return orjson.loads(resp.read())

    def post(self, path: str, body: object, key: str | None = None) -> tuple[int, Any]:
        return request_json("POST", self.url + path, body, key=key or self.admin_key)

    def report(self, drone_id: str, lat: float, lon: float, **extra: Any) -> None:
        """One reading through HTTP ingest, then the processor and the archiver (history)
        until the bus is drained."""
        seq = self.seq[drone_id] = self.seq.get(drone_id, 0) + 1
        reading = {
            "drone_id": drone_id,
            "seq": seq,
            "ts": int(time.time() * 1000),
            "lat": lat,
            "lon": lon,
            "alt_m": 80.0,
            "speed_mps": 12.0,
            "heading_deg": 90.0,
            "battery_pct": 90.0 - seq,
            "status": "in_flight",
            **extra,
        }
        status, out = self.post("/api/v1/telemetry", [reading])
        assert (status, out["accepted"]) == (202, 1), out
        while self.processor.poll():
            pass
        while self.archiver.poll():
            pass


def open_dashboard(
    browser: Browser,
    url: str,
    key: str,
    console_errors: list[str],
    width: int = 1280,
    height: int = 800,
) -> Page:
    """The dashboard at ``url`` in a new context, signed in with ``key`` through the login
    page as a person would, and ready (its first reads done, the stream opened); its console
    errors and uncaught exceptions collected in ``console_errors``."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            console_errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: console_errors.append(f"uncaught: {exc}"))
    sign_in(page, url, key)
    page.wait_for_selector("body[data-ready=true]", timeout=15_000)
    return page


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
