"""Query, path and JSON body parsing with precise errors, shared by every blueprint.

Each query helper reads ``flask.request.args`` and raises :class:`ApiError` naming the
parameter, so a caller sees exactly which parameter was wrong and why. An empty value
(``?drone_id=``) counts as absent, which is what form-built URLs send. :func:`json_body`
does the same for a JSON request body validated by a pydantic model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import TypeVar

import orjson
from flask import request
from pydantic import BaseModel, ValidationError

from skyhive.api.errors import ApiError
from skyhive.domain.telemetry import DRONE_ID_RE, format_validation_error

M = TypeVar("M", bound=BaseModel)

_JSON_TYPE_NAMES = {list: "an array", str: "a string", bool: "a boolean", int: "a number"}

_INT_RE = re.compile(r"^[+-]?\d{1,18}$")
_EPOCH_MS_RE = re.compile(r"^-?\d{1,15}$")
_STREAM_ID_RE = re.compile(r"^\d{1,20}(-\d{1,20})?$")
_MIN_TS = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TS = datetime(2100, 1, 1, tzinfo=UTC)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _raw(name: str) -> str | None:
    value = request.args.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _missing(name: str) -> ApiError:
    return ApiError(400, f"query parameter {name!r} is required", name)


def float_param(name: str, lo: float, hi: float, default: float | None = None) -> float:
    """A finite float in ``[lo, hi]``; required when there is no default."""
    raw = _raw(name)
    if raw is None:
        if default is None:
            raise _missing(name)
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a number, got {raw!r}", name) from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo:g} and {hi:g}, got {raw!r}", name)
    return value


def int_param(name: str, lo: int, hi: int, default: int | None = None) -> int:
    """An integer in ``[lo, hi]``; required when there is no default."""
    raw = _raw(name)
    if raw is None:
        if default is None:
            raise _missing(name)
        return default
    if not _INT_RE.fullmatch(raw):
        raise ApiError(400, f"{name} must be an integer, got {raw!r}", name)
    value = int(raw)
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}, got {value}", name)
    return value


def optional_int_param(name: str, lo: int, hi: int) -> int | None:
    """An integer in ``[lo, hi]``, or None when absent."""
    return None if _raw(name) is None else int_param(name, lo, hi)


def limit_param(default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    return int_param("limit", 1, maximum, default)


def choice_param(name: str, choices: Collection[str]) -> str | None:
    raw = _raw(name)
    if raw is not None and raw not in choices:
        allowed = ", ".join(sorted(choices))
        raise ApiError(400, f"{name} must be one of {allowed}, got {raw!r}", name)
    return raw


def pattern_param(name: str, pattern: str) -> str | None:
    """A value matching ``pattern`` (a full-match regex), so a 400 means "can never exist"."""
    raw = _raw(name)
    if raw is not None and not re.fullmatch(pattern, raw):
        raise ApiError(400, f"{name} must match {pattern}, got {raw[:80]!r}", name)
    return raw


def parse_timestamp(raw: str, name: str) -> datetime:
    """RFC 3339 with an explicit offset (``Z`` or ``+hh:mm``), or integer epoch milliseconds.

    A timestamp without an offset is rejected rather than guessed: the server's local zone
    is meaningless to the caller.
    """
    if _EPOCH_MS_RE.fullmatch(raw):
        try:
            ts = datetime.fromtimestamp(int(raw) / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ApiError(400, f"{name}: epoch milliseconds out of range", name) from None
    else:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            hint = ""
            if " " in raw:
                hint = " (a '+' in a URL must be sent as %2B; or use 'Z')"
            msg = f"{name} must be RFC 3339 or epoch milliseconds, got {raw!r}{hint}"
            raise ApiError(400, msg, name) from None
        if parsed.tzinfo is None:
            raise ApiError(400, f"{name} needs a UTC offset (e.g. 'Z'), got {raw!r}", name)
        ts = parsed.astimezone(UTC)
    if not _MIN_TS <= ts < _MAX_TS:
        raise ApiError(400, f"{name} is out of range (1970..2100), got {raw!r}", name)
    return ts


def timestamp_param(name: str) -> datetime | None:
    raw = _raw(name)
    return None if raw is None else parse_timestamp(raw, name)


def time_window_params() -> tuple[datetime | None, datetime | None]:
    """``since`` (inclusive) and ``until`` (exclusive); an inverted window is an error."""
    since, until = timestamp_param("since"), timestamp_param("until")
    if since is not None and until is not None and since > until:
        raise ApiError(400, "since must not be after until", "since")
    return since, until


def check_drone_id(value: str, name: str = "drone_id") -> str:
    """The same id rule telemetry ingest enforces, so a 400 here means "can never exist"."""
    if not DRONE_ID_RE.fullmatch(value):
        raise ApiError(400, f"{name} must match {DRONE_ID_RE.pattern}, got {value[:80]!r}", name)
    return value


def drone_id_param(name: str = "drone_id") -> str | None:
    raw = _raw(name)
    return None if raw is None else check_drone_id(raw, name)


def stream_id_param(name: str) -> str | None:
    """A Redis stream entry id (``ms-seq``), used as a paging cursor."""
    raw = _raw(name)
    if raw is not None and not _STREAM_ID_RE.fullmatch(raw):
        raise ApiError(400, f"{name} must be a stream entry id like '1700000000000-0'", name)
    return raw


def json_body(model: type[M]) -> M:
    """The request body as ``model``, validated strictly (JSON types as sent, no coercion).

    415 unless the body is ``application/json``; 400 when it is empty, not JSON or not an
    object; 422 when it breaks the schema, with the first error's location as ``field``
    (dotted, e.g. ``package.size``) and up to five errors in the message.
    """
    if request.mimetype != "application/json":
        raise ApiError(415, "Content-Type must be application/json")
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
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
        loc = exc.errors(include_url=False)[0]["loc"]
        field = ".".join(str(p) for p in loc) or None
        raise ApiError(422, format_validation_error(exc), field) from None
