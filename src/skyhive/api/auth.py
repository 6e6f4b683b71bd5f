"""Authentication, authorization, CSRF, the audit log and security headers, for every request.

Runs before the request is parsed, so a caller without the right credentials learns nothing
about the operation's parameters. Credentials, in order: ``Authorization: Bearer <key>``; a
drone's own ``Authorization: Basic`` (id and MQTT password), only where the operation
declares device access; the dashboard's session cookie, whose writes also need the
``X-CSRF-Token`` header (the cookie is ``SameSite=Strict`` as well).
"""

from __future__ import annotations

import logging
import re
import uuid
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, redirect, request

from skyhive.adapters.sessions_store import Session
from skyhive.api.errors import error_response
from skyhive.api.operation import access_of
from skyhive.api.responses import current_clients
from skyhive.domain.access import Access, Principal, Role
from skyhive.services.api_keys import audit_entry, authenticate, principal_for

log = logging.getLogger(__name__)

SESSION_COOKIE = "skyhive_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_STATIC_ENDPOINTS = frozenset({"static", "dashboard.static"})
LOGIN_PATH = "/login"


def current_principal() -> Principal:
    """The caller of a non-public operation (set before the view runs)."""
    principal: Principal = g.principal
    return principal


def own_customer() -> str | None:
    """The customer a customer key is bound to; None for staff keys (they see everyone's)."""
    principal: Principal | None = g.get("principal")
    return principal.customer_id if principal is not None and principal.is_customer else None


def _unauthorized(message: str) -> Response:
    return error_response(
        401, message, headers={"WWW-Authenticate": 'Bearer realm="skyhive", charset="UTF-8"'}
    )


def _from_session() -> tuple[Principal | None, Session | None]:
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None, None
    clients = current_clients()
    session = clients.sessions.get(sid)
    if session is None:
        return None, None
    principal = principal_for(clients, session.key_id)
    if principal is None:  # its key was revoked or has expired: so has the session
        clients.sessions.close(sid)
        return None, None
    return principal, session


def _from_device(username: str, password: str) -> Principal | None:
    from skyhive.services.device_credentials import verify_device

    if not verify_device(current_clients(), username, password):
        return None
    return Principal(f"drone:{username}", username, Role.drone)


def _authenticate(access: Access) -> Principal | Response:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        principal = authenticate(current_clients(), credentials.strip())
        return principal or _unauthorized("the API key is unknown, expired or revoked")
    if scheme == "basic" and access.device and request.authorization is not None:
        auth = request.authorization
        principal = _from_device(auth.username or "", auth.password or "")
        return principal or _unauthorized("the drone's id or password is wrong")
    if header:
        return _unauthorized("use 'Authorization: Bearer <API key>'")
    principal, session = _from_session()
    if principal is None or session is None:
        return _unauthorized("an API key is required: 'Authorization: Bearer <key>'")
    if (
        request.method not in SAFE_METHODS
        and request.headers.get(CSRF_HEADER) != session.csrf_token
    ):
        return error_response(403, f"a write from the dashboard needs the {CSRF_HEADER} header")
    return principal


def _authorize() -> Response | None:
    g.request_id = _request_id()
    endpoint = request.endpoint
    if endpoint is None or endpoint in _STATIC_ENDPOINTS:
        return None  # routing errors and static files: nothing to protect
    access = access_of(current_app.view_functions.get(endpoint))
    if access is None:
        log.error("endpoint %s declares no access; refused", endpoint)
        return error_response(403, "this operation declares no access and is refused")
    if access.public:
        return None
    found = _authenticate(access)
    if isinstance(found, Response):
        if found.status_code == 401 and endpoint == "dashboard.index":
            return redirect(LOGIN_PATH, code=303)  # type: ignore[return-value]
        return found
    if not access.allows(found):
        return error_response(403, f"the {found.role.value} role may not do this")
    g.principal = found
    g.rate_key = f"drone:{found.name}" if found.role is Role.drone else f"key:{found.key_id}"
    return None


def _request_id() -> str:
    given = request.headers.get("X-Request-Id", "")
    return given if _REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex


def _audit(response: Response) -> None:
    """Every write by a person or script, allowed or refused by the view (never a body)."""
    principal: Principal | None = g.get("principal")
    if principal is None or request.method in SAFE_METHODS or principal.role is Role.drone:
        return
    target = "/".join(str(v)[:100] for v in (request.view_args or {}).values()) or None
    entry = audit_entry(
        g.request_id,
        principal,
        request.endpoint,
        method=request.method,
        path=request.path[:300],
        target=target,
        status=response.status_code,
        at=current_clients().clock.now(),
    )
    try:
        current_clients().audit.record(entry)
    except Exception:  # the write happened; a lost audit line must not turn it into a 500
        log.exception("could not record audit entry %s", g.request_id)


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Content-Security-Policy", _csp())
    if "request_id" in g:
        headers["X-Request-Id"] = g.request_id
    return response


def _csp() -> str:
    """No inline scripts or styles anywhere; images and the tile probe may also reach the
    configured map tile server (``{s}`` subdomains as a wildcard)."""
    tiles = current_clients().settings.dashboard.tiles_url
    parts = urlsplit(tiles) if tiles else None
    tile_origin = ""
    if parts is not None and parts.scheme in ("http", "https") and parts.netloc:
        tile_origin = f" {parts.scheme}://{parts.netloc.replace('{s}', '*')}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data:{tile_origin}; connect-src 'self'{tile_origin}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def _after(response: Response) -> Response:
    _audit(response)
    return _security_headers(response)


def install_auth(app: Flask) -> None:
    """Register first, so rate limits and views see ``g.principal``."""
    app.before_request(_authorize)
    app.after_request(_after)
