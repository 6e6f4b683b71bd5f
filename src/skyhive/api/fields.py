"""The building blocks of the API's path, query and response models.

Query strings are text, so query models are validated in pydantic's lax mode; an empty value
(``?drone_id=``, what form-built URLs send) counts as absent. Timestamps are RFC 3339 with an
explicit offset or integer epoch milliseconds, and never guessed in the server's local zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from skyhive.domain.telemetry import DRONE_ID_RE

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_EPOCH_MS_RE = re.compile(r"^-?\d{1,15}$")
MIN_TS = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TS = datetime(2100, 1, 1, tzinfo=UTC)
RFC3339_OR_EPOCH_MS = (
    "RFC 3339 timestamp with an offset (e.g. `2025-01-31T12:00:00Z`; send `+` as `%2B`) "
    "or integer epoch milliseconds."
)


def parse_timestamp(raw: object) -> datetime:
    """RFC 3339 with an offset (``Z`` or ``+hh:mm``), or integer epoch milliseconds."""
    if isinstance(raw, datetime):
        ts = raw
    elif not isinstance(raw, str):
        raise ValueError("expected a timestamp string")
    elif _EPOCH_MS_RE.fullmatch(raw):
        try:
            ts = datetime.fromtimestamp(int(raw) / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("epoch milliseconds out of range") from None
    else:
        try:
            ts = datetime.fromisoformat(raw)
        except ValueError:
            hint = " (a '+' in a URL must be sent as %2B; or use 'Z')" if " " in raw else ""
            raise ValueError(
                f"must be RFC 3339 or epoch milliseconds, got {raw[:40]!r}{hint}"
            ) from None
    if ts.tzinfo is None:
        raise ValueError(f"needs a UTC offset (e.g. 'Z'), got {str(raw)[:40]!r}")
    ts = ts.astimezone(UTC)
    if not MIN_TS <= ts < MAX_TS:
        raise ValueError("is out of range (1970..2100)")
    return ts


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    WithJsonSchema({"type": "string", "description": RFC3339_OR_EPOCH_MS}),
]


DroneId = Annotated[str, Field(pattern=DRONE_ID_RE.pattern, description="A drone's id.")]
Limit = Annotated[
    int, Field(ge=1, le=MAX_LIMIT, description=f"At most this many items (1-{MAX_LIMIT}).")
]


class QueryModel(BaseModel):
    """A query string: unknown parameters are ignored, empty values are absent."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data


class PathModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitQuery(QueryModel):
    limit: Limit = DEFAULT_LIMIT


class PagedQuery(LimitQuery):
    """A list paged by keyset: ``before`` is the ``id`` of the last item of the previous
    page (same filters); an id that is not in the list is a 400."""

    before: str | None = Field(
        default=None,
        pattern=r"^\S{1,200}$",
        description="Page on: the `id` of the last item of the previous page (same filters).",
    )


class WindowQuery(LimitQuery):
    """``since`` (inclusive) and ``until`` (exclusive); an inverted window is an error, named
    after ``since`` (``until`` is declared first so that ``since`` can be checked against it)."""

    until: Timestamp | None = None
    since: Timestamp | None = None

    @field_validator("since")
    @classmethod
    def _ordered(cls, since: datetime | None, info: ValidationInfo) -> datetime | None:
        until = info.data.get("until")
        if since is not None and until is not None and since > until:
            raise ValueError("since must not be after until")
        return since


class Items(BaseModel, Generic[T]):
    """The one list envelope every collection answers with."""

    items: list[T]
    count: int = Field(ge=0, description="Length of `items`.")


class Open(BaseModel):
    """A record whose fields are described but may grow: unknown fields are kept."""

    model_config = ConfigDict(extra="allow")


Finite = Annotated[float, Field(allow_inf_nan=False)]
__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "DroneId",
    "Finite",
    "Items",
    "Limit",
    "LimitQuery",
    "Open",
    "PagedQuery",
    "PathModel",
    "QueryModel",
    "Timestamp",
    "WindowQuery",
    "parse_timestamp",
]
