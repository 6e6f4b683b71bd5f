"""The dashboard's session: sign in with an API key, get an HttpOnly cookie and a CSRF token.

The key is sent once, in the body of the sign-in request, and never stored in the browser:
the cookie names a server-side session (see ``adapters/sessions_store.py``), ``HttpOnly`` so
scripts can't read it, ``SameSite=Strict`` so other sites can't send it, ``Secure`` over
HTTPS. Writes made with the cookie must repeat the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

from flask import Response, g, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from skyhive.adapters.sessions_store import SESSION_TTL_S
from skyhive.api.auth import SESSION_COOKIE, current_principal
from skyhive.api.errors import ApiError
from skyhive.api.operation import PUBLIC, VIEWER, operation
from skyhive.api.responses import current_clients, json_response
from skyhive.domain.access import Role
from skyhive.services.api_keys import authenticate

bp = APIBlueprint("session", __name__, url_prefix="/api/v1/session", abp_tags=[Tag(name="session")])


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=200, description="A staff API key.")


class SessionView(BaseModel):
    name: str
    role: str
    csrf_token: str = Field(description="Send it back in `X-CSRF-Token` with every write.")


@operation(bp.post, "", access=PUBLIC, ok=SessionView, status=201, errors=(401, 403, 429))
def sign_in(body: SignIn) -> Response:
    """Open a dashboard session with a viewer, operator or admin key."""
    clients = current_clients()
    principal = authenticate(clients, body.key)
    if principal is None:
        raise ApiError(401, "the API key is unknown, expired or revoked", "key")
    if principal.role is Role.customer:
        raise ApiError(403, "the dashboard is for staff keys; a customer key uses the API", "key")
    session = clients.sessions.open(principal.key_id)
    g.principal = principal  # so the sign-in is in the audit log
    resp = json_response(
        {"name": principal.name, "role": principal.role.value, "csrf_token": session.csrf_token},
        status=201,
    )
    resp.set_cookie(
        SESSION_COOKIE,
        session.session_id,
        max_age=SESSION_TTL_S,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/",
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


@operation(bp.get, "", access=VIEWER, ok=SessionView)
def who_am_i() -> Response:
    """The signed-in key's name and role, and the session's CSRF token."""
    principal = current_principal()
    sid = request.cookies.get(SESSION_COOKIE, "")
    session = current_clients().sessions.get(sid) if sid else None
    token = session.csrf_token if session is not None else ""
    body = {"name": principal.name, "role": principal.role.value, "csrf_token": token}
    return json_response(body, headers={"Cache-Control": "no-store"})


@operation(bp.delete, "", access=VIEWER, ok=None, status=204)
def sign_out() -> Response:
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        current_clients().sessions.close(sid)
    resp = Response(status=204)
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
    return resp
