"""Request body limits per route, enforced while reading, chunked bodies included.

Two places enforce the same numbers (:func:`body_limit_for`):

- the server (``api/server.py``) while it reads the request, before any thread sees it: a
  declared ``Content-Length`` over the limit is refused as soon as the headers are in, a
  chunked body once what arrived passes the limit (plus room for the chunk framing);
- the app (:func:`install_body_limits`), on the exact decoded length, whatever server runs it:
  waitress gives a de-chunked body its ``Content-Length``; under a server that does not, the
  input stream itself refuses to give more than the limit.

Either way the answer is a 413 in the app's error format, never a silently shortened body
(which is what Werkzeug's own limit does to a chunked body: it stops reading at the limit).
"""

from __future__ import annotations

import io
from typing import IO, Any

from flask import Flask, request

from skyhive.api.errors import ApiError
from skyhive.api.responses import current_clients
from skyhive.settings import HttpConfig

# Routes that take batches; every other route takes one JSON document.
INGEST_PATHS = frozenset({"/api/v1/telemetry"})


def body_limit_for(path: str, config: HttpConfig) -> int:
    return config.ingest_body_limit_bytes if path in INGEST_PATHS else config.body_limit_bytes


def too_large_message(limit: int) -> str:
    return f"request body is larger than this route's limit of {limit} bytes; split it up"


class LimitedInput(io.RawIOBase):
    """``wsgi.input`` that raises a 413 as soon as more than ``limit`` bytes are read, for a
    body whose length nobody told us. Reading one byte past the limit is what tells an
    over-limit body from one exactly at it. Every read goes through :meth:`readinto` (which
    Werkzeug prefers), so nothing reaches the body around the count."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__()
        self._stream = stream
        self._limit = limit
        self._read = 0

    def readable(self) -> bool:
        return True

    def _counted(self, n: int) -> int:
        self._read += n
        if self._read > self._limit:
            raise ApiError(413, too_large_message(self._limit))
        return n

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._limit + 1 - self._read)
        if want <= 0:
            return 0
        data = self._stream.read(want)
        view[: len(data)] = data
        return self._counted(len(data))

    def readline(self, size: int | None = -1) -> bytes:
        room = self._limit + 1 - self._read
        want = room if size is None or size < 0 else min(size, room)
        if want <= 0:
            return b""
        line = self._stream.readline(want)
        self._counted(len(line))
        return line


def _enforce() -> None:
    limit = body_limit_for(request.path, current_clients().settings.http)
    request.max_content_length = limit  # Werkzeug's own checks (form parsing) agree
    length = request.content_length
    if length is not None:
        if length > limit:
            raise ApiError(413, too_large_message(limit))
        return
    env = request.environ
    if env.get("wsgi.input_terminated"):  # a streamed body of unknown length (chunked)
        env["wsgi.input"] = LimitedInput(env["wsgi.input"], limit)
        # Werkzeug's stream stops quietly at its maximum: let it ask for the one byte more
        # that makes ours refuse.
        request.max_content_length = limit + 1


def install_body_limits(app: Flask) -> None:
    """Check every request's body against its route's limit before any view reads it."""
    app.before_request(_enforce)
