"""Assertions shared by the API tests: JSON bodies, the JSON error shape, SSE frames."""

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


def frames(chunk: bytes) -> list[tuple[str, Any]]:
    """``(event, data)`` per frame of an SSE chunk."""
    out = []
    for frame in chunk.decode().split("\n\n"):
        if frame:
            fields = dict(line.split(": ", 1) for line in frame.split("\n"))
            out.append((fields["event"], orjson.loads(fields["data"])))
    return out
