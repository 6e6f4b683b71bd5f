"""HTTP telemetry ingest: the same validation and hand-off as MQTT, for batch uploads.

A bad item is dead-lettered with its reason and reported back; it never fails the request,
so one corrupt reading cannot hold back a whole upload.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from flask import Blueprint, Response, request

from skyhive.api.errors import ApiError
from skyhive.api.responses import current_clients, json_response
from skyhive.services.ingest import RawMessage, ingest_for

bp = Blueprint("ingest", __name__, url_prefix="/api/v1")

MAX_ITEMS = 10_000
MAX_ERRORS_LISTED = 100
SOURCE = "http"
JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


@dataclass(frozen=True, slots=True)
class Item:
    message: RawMessage
    line: int | None = None  # 1-based line number, for NDJSON


def _from_json_array(body: bytes) -> list[Item]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ApiError(400, "body must be a JSON array of telemetry objects")
    _check_count(len(data))
    return [Item(RawMessage(elem, SOURCE)) for elem in data]


def _from_ndjson(body: bytes) -> list[Item]:
    """Blank lines are skipped; every other line is passed on as raw bytes, so a line that is
    not JSON is rejected (and dead-lettered) on its own by the shared validation."""
    items: list[Item] = []
    for lineno, line in enumerate(body.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        items.append(Item(RawMessage(line, SOURCE), lineno))
        _check_count(len(items))
    return items


def _check_count(n: int) -> None:
    if n > MAX_ITEMS:
        raise ApiError(413, f"too many items: at most {MAX_ITEMS} per request")


@bp.post("/telemetry")
def ingest_telemetry() -> Response:
    mimetype = request.mimetype
    if mimetype not in JSON_TYPES | NDJSON_TYPES:
        raise ApiError(
            415, "Content-Type must be application/json (an array) or application/x-ndjson"
        )
    body = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if not body.strip():
        raise ApiError(400, "request body is empty")
    items = _from_json_array(body) if mimetype in JSON_TYPES else _from_ndjson(body)
    if not items:
        raise ApiError(400, "no telemetry items in the request body")

    result = ingest_for(current_clients()).submit([item.message for item in items])

    errors: list[dict[str, object]] = []
    for index, reason in result.errors[:MAX_ERRORS_LISTED]:
        err: dict[str, object] = {"index": index, "reason": reason}
        line = items[index].line
        if line is not None:
            err["line"] = line
        errors.append(err)
    body_out = {
        "accepted": result.accepted,
        "rejected": result.rejected,
        "errors": errors,
        "errors_truncated": len(result.errors) > MAX_ERRORS_LISTED,
    }
    return json_response(body_out, status=202)
