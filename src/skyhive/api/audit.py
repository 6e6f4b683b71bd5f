"""The audit log, for admins: who did what, to what, when, and how it went."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from skyhive.adapters.mongo import Document
from skyhive.api.fields import Items, WindowQuery
from skyhive.api.operation import ADMIN, operation
from skyhive.api.responses import current_clients, items_response

bp = APIBlueprint("audit", __name__, url_prefix="/api/v1/audit", abp_tags=[Tag(name="audit")])


class AuditQuery(WindowQuery):
    key_id: str | None = Field(default=None, max_length=64)
    action: str | None = Field(default=None, max_length=100, description="e.g. `alerts.ack_alert`.")
    target: str | None = Field(default=None, max_length=300)
    outcome: Literal["ok", "refused", "failed"] | None = None


class AuditEntry(BaseModel):
    request_id: str
    at: datetime
    key_id: str
    key_name: str
    role: str
    action: str | None
    method: str
    path: str
    target: str | None
    status: int
    outcome: str


def entry_view(doc: Document) -> dict[str, object]:
    return {"request_id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}


@operation(bp.get, "", access=ADMIN, ok=Items[AuditEntry])
def list_audit(query: AuditQuery) -> Response:
    """Newest first."""
    docs = current_clients().audit.find(
        key_id=query.key_id,
        action=query.action,
        target=query.target,
        outcome=query.outcome,
        since=query.since,
        until=query.until,
        limit=query.limit,
    )
    return items_response([entry_view(d) for d in docs])
