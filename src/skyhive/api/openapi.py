"""The OpenAPI 3.1 document, generated from the operations' own declarations (see
:mod:`skyhive.api.operation`) and served at ``/api/v1/openapi.json`` to any signed-in caller.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Blueprint, Response, current_app

from skyhive.api.operation import REQUEST_CONTENT_EXT, VIEWER, declare
from skyhive.api.responses import json_response

bp = Blueprint("openapi", __name__)

DESCRIPTION = (
    "Real-time operations for a drone delivery fleet. Every operation but the health checks "
    "needs credentials: an API key (`Authorization: Bearer shk_...`, from `skyhive keys "
    "create`) or the dashboard's session. Each operation's `x-skyhive-role` names the least "
    "role that may call it (`viewer` < `operator` < `admin`; `own-customer`: a customer key, "
    "for its own records only; `own-drone`: a drone with its own credential). Errors are "
    '`{"error": {"code", "message", "field"?}}`.'
)


def document() -> dict[str, Any]:
    """The generated document, without the validation answer flask-openapi3 adds to every
    operation (ours are declared per operation, only where a request can be invalid), and
    with the bodies that views read themselves described as declared."""
    doc: dict[str, Any] = copy.deepcopy(current_app.api_doc)  # type: ignore[attr-defined]
    for path_item in doc.get("paths", {}).values():
        for op in path_item.values():
            answer = op.get("responses", {}).get("400", {})
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("type") == "array":
                del op["responses"]["400"]
            body = op.pop(REQUEST_CONTENT_EXT, None)
            if body is not None:
                op["requestBody"] = body
    return doc


@bp.get("/api/v1/openapi.json")
@declare(VIEWER)
def openapi_document() -> Response:
    return json_response(document())
