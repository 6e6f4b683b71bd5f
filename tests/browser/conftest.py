"""Browser fixtures: the API (with the dashboard) served over real HTTP on the embedded
servers, the real processor run by the test, and Debian's headless Chromium driven by
Playwright (``make chromium`` installs it; Playwright never downloads a browser)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from dashboard_stack import Stack, open_dashboard, screenshot
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import make_server

from auth_helpers import make_key
from redis_access import subscribers as subscribers_of
from skyhive.adapters.live_state import FLEET_UPDATES
from skyhive.api import create_app, stream
from skyhive.bench.browser import launch_chromium
from skyhive.bootstrap import bootstrap
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers.archiver import build_archiver
from skyhive.workers.processor import build_processor


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = launch_chromium(pw)
        yield b
        b.close()


@pytest.fixture
def tiles_url() -> str:
    """Map tiles off: the machine (and CI) has no internet. A test parametrizes it to try
    others."""
    return ""


@pytest.fixture
def stack(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, tiles_url: str
) -> Iterator[Stack]:
    """Short keepalives, so a stream whose page was closed ends (and unsubscribes) before the
    clients are closed."""
    monkeypatch.setattr(stream, "KEEPALIVE_S", 0.2)
    clients = Clients(make_settings(dashboard={"tiles_url": tiles_url}))
    bootstrap(clients)
    processor = build_processor(clients, "browser-test")
    processor.setup()
    archiver = build_archiver(clients, "browser-test")
    archiver.setup()
    server = make_server("127.0.0.1", 0, create_app(clients.settings, clients), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        operator, admin = make_key(clients, "operator"), make_key(clients, "admin")
        yield Stack(clients, url, processor, archiver, operator, admin)
    finally:
        server.shutdown()
        deadline = time.monotonic() + 5
        while subscribers(clients) and time.monotonic() < deadline:
            time.sleep(0.05)
        clients.close()


def subscribers(clients: Clients) -> int:
    return subscribers_of(clients.redis_text, FLEET_UPDATES)


@pytest.fixture
def console_errors() -> list[str]:
    return []


@pytest.fixture
def open_page(
    browser: Browser, stack: Stack, console_errors: list[str], request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    """A new page on the dashboard at a given viewport, signed in with the stack's operator
    key, console errors collected; each page is screenshotted (``tests/browser/screenshots/``)
    when the test ends."""
    pages: list[tuple[str, Page]] = []

    def open_one(width: int = 1280, height: int = 800) -> Page:
        page = open_dashboard(browser, stack.url, stack.key, console_errors, width, height)
        pages.append((f"{width}x{height}", page))
        return page

    yield open_one
    for size, page in pages:
        screenshot(page, f"{request.node.name}-{size}")
        page.context.close()
