"""Debian's headless Chromium under Playwright, for the dashboard's load measurement and
browser tests, and signing in to the dashboard as a person does. ``make chromium`` installs
it; Playwright never downloads a browser here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps reaching out to Google's hosts,
# which a closed network refuses, many connections at a time.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class ChromiumMissing(RuntimeError):
    pass


def launch_chromium(pw: Playwright) -> Browser:
    if not CHROMIUM.is_file():
        raise ChromiumMissing(f"{CHROMIUM} is missing: run `make chromium` (as root) first")
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))


def sign_in(page: Page, base_url: str, key: str, timeout_ms: float = 15_000) -> None:
    """Open the dashboard at ``base_url`` (no trailing slash) without a session, which sends
    the browser to the login page; type ``key``, submit, and wait to be back on the
    dashboard (not yet ready: wait for ``body[data-ready=true]`` for that)."""
    page.goto(base_url + "/")
    page.wait_for_url(base_url + "/login", timeout=timeout_ms)
    page.locator("#key").fill(key)
    page.locator("#login-form button[type=submit]").click()
    page.wait_for_url(base_url + "/", timeout=timeout_ms)
