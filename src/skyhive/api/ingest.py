"""HTTP telemetry ingest: the same validation and hand-off as MQTT, for batch uploads.

A bad item is dead-lettered with its reason and reported back; it never fails the request,
so one corrupt reading cannot hold back a whole upload.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from flask import Response, request
from flask_openapi3 import APIBlueprint, Tag
from flask_openapi3.models import RawModel
from pydantic import BaseModel, Field

from skyhive.api.auth import current_principal
from skyhive.api.errors import ApiError
from skyhive.api.operation import DRONE_OR_ADMIN, operation
from skyhive.api.responses import current_clients, json_response
from skyhive.domain.access import Role
from skyhive.domain.telemetry import Telemetry
from skyhive.services.ingest import RawMessage

bp = APIBlueprint("ingest", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="telemetry")])

MAX_ITEMS = 10_000
MAX_ERRORS_LISTED = 100
SOURCE = "http"
JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


class TelemetryUpload(RawModel):
    """A JSON array of telemetry v1 objects, or NDJSON (one object a line)."""

    mimetypes = ["application/json", "application/x-ndjson"]


class ItemError(BaseModel):
    index: int = Field(ge=0, description="0-based position in the upload.")
    line: int | None = Field(default=None, ge=1, description="1-based line, for NDJSON.")
    reason: str


class IngestResult(BaseModel):
    accepted: int = Field(ge=0)
    rejected: int = Field(ge=0, description="Each rejected item is dead-lettered with its reason.")
    errors: list[ItemError] = Field(description=f"The first {MAX_ERRORS_LISTED} rejections.")
    errors_truncated: bool


UPLOAD_SCHEMA = {
    "application/json": {"schema": {"type": "array", "items": Telemetry.model_json_schema()}},
    "application/x-ndjson": {
        "schema": {"type": "string", "description": "One telemetry v1 object per line."}
    },
}


@dataclass(frozen=True, slots=True)
class Item:
    message: RawMessage
    line: int | None = None  # 1-based line number, for NDJSON


def _from_json_array(body: bytes, drone_id: str | None) -> list[Item]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ApiError(400, "body must be a JSON array of telemetry objects")
    _check_count(len(data))
    return [Item(RawMessage(elem, SOURCE, drone_id)) for elem in data]


def _from_ndjson(body: bytes, drone_id: str | None) -> list[Item]:
    """Blank lines are skipped; every other line is passed on as raw bytes, so a line that is
    not JSON is rejected (and dead-lettered) on its own by the shared validation."""
    items: list[Item] = []
    for lineno, line in enumerate(body.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        items.append(Item(RawMessage(line, SOURCE, drone_id), lineno))
        _check_count(len(items))
    return items


def _check_count(n: int) -> None:
    if n > MAX_ITEMS:
        raise ApiError(413, f"too many items: at most {MAX_ITEMS} per request")


@operation(
    bp.post,
    "/telemetry",
    access=DRONE_OR_ADMIN,
    ok=IngestResult,
    status=202,
    errors=(400, 413, 415),
    request_content=UPLOAD_SCHEMA,
)
def ingest_telemetry(raw: TelemetryUpload) -> Response:
    """Upload readings. A drone signs in with its own id and MQTT password (HTTP Basic) and
    may send only its own readings (a reading for another drone is rejected and
    dead-lettered); an admin key may send any drone's (backfill)."""
    principal = current_principal()
    own_drone = principal.name if principal.role is Role.drone else None
    mimetype = request.mimetype
    if mimetype not in JSON_TYPES | NDJSON_TYPES:
        raise ApiError(
            415, "Content-Type must be application/json (an array) or application/x-ndjson"
        )
    body = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if not body.strip():
        raise ApiError(400, "request body is empty")
    parse = _from_json_array if mimetype in JSON_TYPES else _from_ndjson
    items = parse(body, own_drone)
    if not items:
        raise ApiError(400, "no telemetry items in the request body")

    result = current_clients().ingest.submit([item.message for item in items])

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
