"""Dead letters (Redis stream): rejected messages with their reason, newest first."""

from __future__ import annotations

from datetime import datetime

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from skyhive.api.fields import Items, LimitQuery
from skyhive.api.operation import VIEWER, operation
from skyhive.api.responses import current_clients, items_response

bp = APIBlueprint(
    "deadletters", __name__, url_prefix="/api/v1/deadletters", abp_tags=[Tag(name="deadletters")]
)

STREAM_ID_PATTERN = r"^\d{1,20}(-\d{1,20})?$"


class DeadLetter(BaseModel):
    id: str = Field(description="Stream entry id; a paging cursor.")
    reason: str
    source: str = Field(examples=["http", "mqtt:skyhive/drones/d1/telemetry"])
    received_at: datetime
    raw: str = Field(description="The payload (first 4 KiB, as UTF-8).")
    raw_bytes: int = Field(ge=0, description="Full size of the payload.")


class DeadLetterPage(Items[DeadLetter]):
    total: int = Field(ge=0, description="Entries in the stream.")
    next_before: str | None = Field(
        description="Pass as `before` for the next page; null on the last page."
    )


class DeadLettersQuery(LimitQuery):
    before: str | None = Field(
        default=None,
        pattern=STREAM_ID_PATTERN,
        description="Entries strictly older than this stream entry id (a previous "
        "`next_before`, like `1700000000000-0`).",
    )


@operation(bp.get, "", access=VIEWER, ok=DeadLetterPage)
def list_deadletters(query: DeadLettersQuery) -> Response:
    """Rejected messages, newest first. Page back with `before=<next_before>`;
    `next_before` is null on the last page."""
    dead = current_clients().deadletters
    items = dead.list(limit=query.limit, before=query.before)
    next_before = items[-1]["id"] if len(items) == query.limit else None
    return items_response(items, total=dead.count(), next_before=next_before)
