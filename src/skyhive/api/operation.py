"""Declare each API operation once, next to its view.

``@operation(bp.get, "/<drone_id>", access=VIEWER, ok=DroneState, errors=(404,))`` says, in
one place, who may call the operation and what it answers; the view's own ``path``,
``query`` and ``body`` parameters (pydantic models) say what it takes. flask-openapi3 builds
the OpenAPI 3.1 document and validates the request from the same declaration; the access
is enforced by :mod:`skyhive.api.auth` before the request is even parsed, and an endpoint
that declares no access is refused, so nothing is open by accident.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, get_type_hints

import orjson
from flask import Response, current_app, request
from pydantic import BaseModel, ValidationError

from skyhive.api.errors import ApiError, error_response
from skyhive.domain.access import PUBLIC, Access, Role
from skyhive.domain.telemetry import format_validation_error

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)

ACCESS_ATTR = "__skyhive_access__"
BODY_ATTR = "__skyhive_body__"
PATH_ATTR = "__skyhive_path__"
REQUEST_CONTENT_EXT = "x-skyhive-request-content"  # moved into requestBody by api/openapi.py
_JSON_TYPE_NAMES = {list: "an array", str: "a string", bool: "a boolean"}

VIEWER = Access(Role.viewer)
VIEWER_OR_OWN_CUSTOMER = Access(Role.viewer, customer=True)
OPERATOR = Access(Role.operator)
OPERATOR_OR_OWN_CUSTOMER = Access(Role.operator, customer=True)
ADMIN = Access(Role.admin)
ADMIN_OR_OWN_CUSTOMER = Access(Role.admin, customer=True)
# Telemetry ingest: a drone with its own credential (its own readings), or an admin (backfill).
DRONE_OR_ADMIN = Access(Role.admin, device=True)
__all__ = [
    "ADMIN",
    "ADMIN_OR_OWN_CUSTOMER",
    "DRONE_OR_ADMIN",
    "OPERATOR",
    "OPERATOR_OR_OWN_CUSTOMER",
    "PUBLIC",
    "VIEWER",
    "VIEWER_OR_OWN_CUSTOMER",
    "ErrorBody",
    "access_of",
    "declare",
    "operation",
]


class ErrorDetail(BaseModel):
    code: int
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"code", "message", "field"?}}``."""

    error: ErrorDetail


ERROR_DESCRIPTIONS = {
    400: "A query or path parameter, or the body's JSON itself, is malformed.",
    401: "No credentials, or they are unknown, expired or revoked (see `WWW-Authenticate`).",
    403: "The credentials are valid but their role does not allow this operation.",
    404: "Not found (for a customer key, also another customer's record).",
    408: "The work asked for ran past its time limit and was stopped; ask for less.",
    409: "Conflicts with the current state.",
    413: "The request body is larger than this operation's limit.",
    415: "The body must be JSON (`Content-Type: application/json`).",
    422: "The body is well-formed JSON but breaks the schema.",
    429: "Too many requests for these credentials; retry after `Retry-After` seconds.",
    503: "A backing store is unavailable; retry after `Retry-After` seconds.",
}

ERROR_REF = "#/components/schemas/ErrorBody"  # flask-openapi3 adds its validation model
SECURITY: list[dict[str, list[str]]] = [{"bearerKey": []}, {"sessionCookie": []}]
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`skyhive keys create`): `Authorization: Bearer shk_...`.",
    },
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "skyhive_session",
        "description": "The dashboard's session; writes also need the `X-CSRF-Token` header.",
    },
    "droneBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "A drone's own MQTT credential: its id and password.",
    },
}


# Names of the models that are request bodies: their validation errors are 422, all others
# (path, query) 400. flask-openapi3 hands the error callback only the error, whose title is
# the model's name.
_BODY_MODELS: set[str] = set()


def operation(
    route: Callable[..., Callable[[F], F]],
    rule: str,
    *,
    access: Access,
    ok: type[BaseModel] | dict[str, Any] | None,
    status: int = 200,
    errors: Iterable[int] = (),
    uses_stores: bool = True,
    summary: str | None = None,
    request_content: dict[str, Any] | None = None,
    body_required: bool = True,
) -> Callable[[F], F]:
    """Register ``func`` on ``route`` (a blueprint's ``get``/``post``/...) with its access,
    answers and errors. 401/403/429 come with any non-public operation, 503 with any that
    reads a store, 400/413/415/422 with any that takes parameters or a body.
    ``request_content`` documents a body the view reads itself (``raw``), by media type;
    ``body_required=False`` when it may be left out."""

    def decorate(func: F) -> F:
        hints = get_type_hints(func)
        params = inspect.signature(func).parameters
        takes = {name for name in ("path", "query", "body") if name in params}
        codes = set(errors)
        if takes:
            codes.add(400)
        if "body" in takes:
            codes |= {413, 415, 422}
            _BODY_MODELS.add(hints["body"].__name__)
            setattr(func, BODY_ATTR, hints["body"])
            if "path" in takes:
                setattr(func, PATH_ATTR, hints["path"])
        if not access.public:
            codes |= {401, 403, 429}
        if uses_stores:
            codes.add(503)
        responses: dict[int, Any] = {status: ok}
        for code in sorted(codes):
            responses[code] = {
                "description": ERROR_DESCRIPTIONS[code],
                "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
            }
        setattr(func, ACCESS_ATTR, access)
        extensions: dict[str, Any] = {"x-skyhive-role": access.label}
        if request_content is not None:
            extensions[REQUEST_CONTENT_EXT] = {
                "required": body_required,
                "content": request_content,
            }
        security = [] if access.public else SECURITY
        if access.device:
            security = [{"droneBasic": []}, *security]
        return route(
            rule,
            summary=summary,
            operation_id=func.__name__,
            responses=responses,
            security=security,
            openapi_extensions=extensions,
        )(func)

    return decorate


def access_of(view: Callable[..., Any] | None) -> Access | None:
    """The access an endpoint declared, through flask-openapi3's wrapper; None if none."""
    if view is None:
        return None
    found: Access | None = getattr(inspect.unwrap(view), ACCESS_ATTR, None)
    return found


def check_json_body() -> None:
    """Before flask-openapi3 validates a declared body: see :func:`json_body`. flask-openapi3
    then validates the same body again, in the lax mode its query parsing needs, which a
    strictly valid body always passes. A bad path parameter is left to flask-openapi3 (400,
    naming it), as it would be without this check."""
    view = current_app.view_functions.get(request.endpoint or "")
    func = inspect.unwrap(view) if view else None
    model: type[BaseModel] | None = getattr(func, BODY_ATTR, None)
    if model is None:
        return
    path_model: type[BaseModel] | None = getattr(func, PATH_ATTR, None)
    if path_model is not None:
        try:
            path_model.model_validate(request.view_args or {})
        except ValidationError:
            return
    json_body(model)


def json_body(model: type[M]) -> M:
    """The request body as ``model``: 415 unless it is JSON, 400 when it is empty, not JSON
    or not an object, 422 when it breaks the schema in strict mode (JSON types as sent:
    ``"2"`` is not a number), with the first error's location as ``field``."""
    if request.mimetype != "application/json":
        raise ApiError(415, "Content-Type must be application/json")
    raw = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH
    if not raw.strip():
        raise ApiError(400, "request body is empty; send a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        got = _JSON_TYPE_NAMES.get(type(data), "null" if data is None else "a number")
        raise ApiError(400, f"body must be a JSON object, got {got}")
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise ApiError(422, format_validation_error(exc), _field(exc)) from None


def _field(exc: ValidationError) -> str | None:
    first = exc.errors(include_url=False)
    return ".".join(str(p) for p in first[0]["loc"]) or None if first else None


def validation_error(exc: ValidationError) -> Response:
    """flask-openapi3's hook: our error shape, 422 for a body, 400 for a parameter."""
    status = 422 if exc.title in _BODY_MODELS else 400
    return error_response(status, format_validation_error(exc), _field(exc))


def declare(access: Access) -> Callable[[F], F]:
    """Access for a route outside the API document (the dashboard's pages, metrics)."""

    def decorate(func: F) -> F:
        setattr(func, ACCESS_ATTR, access)
        return func

    return decorate


def app_validation_settings() -> dict[str, Any]:
    """The flask-openapi3 app options that make its validation answer in our shape."""
    return {
        "validation_error_status": 400,
        "validation_error_model": ErrorBody,
        "validation_error_callback": validation_error,
        "security_schemes": SECURITY_SCHEMES,
        "doc_ui": False,
    }
