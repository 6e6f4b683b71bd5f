"""The operations dashboard: one server-rendered page at ``/`` and its static files.

The page is plain HTML; small ES modules (``dashboard/static/js``) fetch the REST API and
follow ``/api/v1/stream/live``. Leaflet and Chart.js come from npm at install time (``make
install`` copies them into ``dashboard/static/vendor``); nothing is loaded from a CDN. Without
them the page says how to get them instead of failing in the browser.

The page needs a viewer (or better) signed in; a browser without a session is sent to the
login page (see ``auth``). Its static files are public: they hold no data.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, make_response, render_template

from skyhive.api.operation import VIEWER, declare
from skyhive.api.responses import current_clients

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
STATIC_DIR = DASHBOARD_DIR / "static"
VENDOR_FILES = (
    "vendor/leaflet/leaflet.js",
    "vendor/leaflet/leaflet.css",
    "vendor/chart.js/chart.umd.js",
)

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder=str(DASHBOARD_DIR / "templates"),
    static_folder=str(STATIC_DIR),
    static_url_path="/dashboard/static",
)


def missing_vendor_files() -> list[str]:
    return [name for name in VENDOR_FILES if not (STATIC_DIR / name).is_file()]


@bp.get("/")
@declare(VIEWER)
def index() -> Response:
    settings = current_clients().settings.dashboard
    config = {"tilesUrl": settings.tiles_url, "tilesAttribution": settings.tiles_attribution}
    html = render_template("dashboard.html", config=config, missing=missing_vendor_files())
    resp = make_response(html)
    resp.headers["Cache-Control"] = "no-cache"
    return resp
