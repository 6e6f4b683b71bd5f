"""The dashboard's sign-in page: the one page that answers without credentials."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, render_template

from skyhive.api.dashboard import DASHBOARD_DIR
from skyhive.api.operation import PUBLIC, declare

bp = Blueprint("login", __name__, template_folder=str(DASHBOARD_DIR / "templates"))


@bp.get("/login")
@declare(PUBLIC)
def login_page() -> Response:
    resp = make_response(render_template("login.html"))
    resp.headers["Cache-Control"] = "no-store"
    return resp
