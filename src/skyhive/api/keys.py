"""API keys, for admins: create (the key is in the answer, once), list, read, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, field_validator

from skyhive.api.errors import ApiError
from skyhive.api.fields import Items, LimitQuery, PathModel
from skyhive.api.operation import ADMIN, operation
from skyhive.api.responses import current_clients, items_response, json_response
from skyhive.domain.access import Role, parse_duration
from skyhive.services.api_keys import KeyRejected, create_key, key_view
from skyhive.services.deliveries import to_millisecond

bp = APIBlueprint("keys", __name__, url_prefix="/api/v1/keys", abp_tags=[Tag(name="keys")])

KEY_ID_PATTERN = r"^[a-z0-9]{12}$"


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, description="Who or what uses the key.")
    role: Literal["viewer", "operator", "admin", "customer"]
    customer_id: str | None = Field(
        default=None, max_length=64, description="Required for, and only for, a customer key."
    )
    expires_in: str | None = Field(
        default=None, description="How long the key lives, e.g. `90d`, `12h`, `2w`."
    )

    @field_validator("expires_in")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class KeyView(BaseModel):
    id: str
    name: str
    role: str
    customer_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewKeyView(KeyView):
    key: str = Field(description="The key itself. Shown this once; only its hash is kept.")


class KeyPath(PathModel):
    key_id: str = Field(pattern=KEY_ID_PATTERN)


class KeysQuery(LimitQuery):
    include_revoked: bool = False
    after: str | None = Field(
        default=None,
        pattern=KEY_ID_PATTERN,
        description="Cursor: the last id of the previous page.",
    )


def _not_found(key_id: str) -> ApiError:
    return ApiError(404, f"API key {key_id!r} not found", "key_id")


@operation(bp.post, "", access=ADMIN, ok=NewKeyView, status=201)
def create_api_key(body: KeyCreate) -> Response:
    """Create a key; the answer carries it once."""
    expires = parse_duration(body.expires_in) if body.expires_in else None
    try:
        doc, secret = create_key(
            current_clients(), body.name, Role(body.role), body.customer_id, expires
        )
    except KeyRejected as exc:
        raise ApiError(422, exc.message, exc.field) from None
    headers = {"Location": f"{bp.url_prefix}/{doc['_id']}", "Cache-Control": "no-store"}
    return json_response({**key_view(doc), "key": secret}, status=201, headers=headers)


@operation(bp.get, "", access=ADMIN, ok=Items[KeyView])
def list_api_keys(query: KeysQuery) -> Response:
    """By id; `after` pages on. Revoked keys only with `include_revoked`."""
    docs = current_clients().api_keys.find(query.include_revoked, query.limit, query.after)
    return items_response([key_view(d) for d in docs])


@operation(bp.get, "/<key_id>", access=ADMIN, ok=KeyView, errors=(404,))
def get_api_key(path: KeyPath) -> Response:
    doc = current_clients().api_keys.get(path.key_id)
    if doc is None:
        raise _not_found(path.key_id)
    return json_response(key_view(doc))


@operation(bp.post, "/<key_id>/revoke", access=ADMIN, ok=KeyView, errors=(404,))
def revoke_api_key(path: KeyPath) -> Response:
    """Revoke at once, in every API process; revoking twice keeps the first time."""
    clients = current_clients()
    doc = clients.api_keys.revoke(path.key_id, to_millisecond(clients.clock.now()))
    if doc is None:
        raise _not_found(path.key_id)
    return json_response(key_view(doc))
