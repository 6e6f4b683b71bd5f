"""JSON over HTTP with the standard library, for what acts as a client of the REST API: the
order generator, and the test harnesses that drive a running stack."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def _parsed(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def request_json(
    method: str, url: str, body: object = None, timeout: float = 10.0, key: str | None = None
) -> tuple[int, Any]:
    """``(status, parsed body)``; the body is None when empty or not JSON. An HTTP error
    status is an answer, returned like any other; a server that does not answer raises
    ``OSError``. ``key`` is sent as ``Authorization: Bearer``."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), _parsed(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:  # an error answer holds the connection open until closed
            return int(exc.code), _parsed(exc.read())
