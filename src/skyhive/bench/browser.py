"""Debian's headless Chromium under Playwright, for the dashboard's load measurement and
browser tests. ``make chromium`` installs it; Playwright never downloads a browser here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

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
