"""Assertions shared by the API tests: JSON bodies and the JSON error shape."""

from __future__ import annotations

from typing import Any

import orjson
from werkzeug.test import TestResponse


def body(resp: TestResponse) -> Any:
    assert resp.mimetype == "application/json", resp.data[:200]
    return orjson.loads(resp.data)


def assert_error(resp: TestResponse, status: int, field: str | None = None) -> str:
    """The JSON error shape, with ``field`` when given; returns the message."""
    assert resp.status_code == status, resp.data[:300]
    err = body(resp)["error"]
    assert err["code"] == status and err["message"]
    assert err.get("field") == field, err
    return str(err["message"])
