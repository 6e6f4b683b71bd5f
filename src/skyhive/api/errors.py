"""One error shape for every failure: ``{"error": {"code", "message", "field"?}}``.

Clients (the dashboard, scripts, other services) can then handle errors without sniffing
HTML pages, whether the error came from a view, from routing, or from a backing store.
"""

from __future__ import annotations

import logging

import redis.exceptions
from flask import Flask, Response, current_app
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from skyhive.adapters.kafka_bus import BusUnavailable
from skyhive.adapters.mongo import UnknownCursor
from skyhive.api.responses import json_response

log = logging.getLogger(__name__)

# How long a client should wait before retrying when a backing store is unreachable.
RETRY_AFTER_S = "5"


class ApiError(Exception):
    """An error the client caused or should know about, with the HTTP status to answer."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def error_response(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, object] = {"code": status, "message": message}
    if field is not None:
        body["field"] = field
    return json_response({"error": body}, status=status, headers=headers)


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.message, exc.field)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = exc.description or exc.name
    headers: dict[str, str] = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if isinstance(exc, RequestEntityTooLarge) and limit:
        message = f"request body is larger than the limit of {limit} bytes; split it up"
    return error_response(status, message, headers=headers)


def _unavailable(message: str) -> Response:
    return error_response(503, message, headers={"Retry-After": RETRY_AFTER_S})


def _mongo_error(exc: PyMongoError) -> Response:
    if isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError):
        log.warning("MongoDB unavailable: %s", exc)
        return _unavailable("MongoDB is unavailable; retry later")
    # Not an outage (e.g. a failed command): still 503, but with the traceback for whoever
    # has to fix it.
    log.error("MongoDB error", exc_info=exc)
    return _unavailable("MongoDB could not serve the request")


def _redis_unavailable(exc: Exception) -> Response:
    log.warning("Redis unavailable: %s", exc)
    return _unavailable("Redis is unavailable; retry later")


def _bus_unavailable(exc: BusUnavailable) -> Response:
    log.warning("bus unavailable: %s", exc)
    return _unavailable("the bus (Kafka) is unavailable; retry later")


def _unknown_cursor(exc: UnknownCursor) -> Response:
    return error_response(400, f"before: no item {str(exc.args[0])[:80]!r} in this list", "before")


def _timeout(exc: TimeoutError) -> Response:
    log.warning("backing store timed out: %s", exc)
    return _unavailable("a backing store timed out; retry later")


def _internal_error(exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal server error")


def register_error_handlers(app: Flask) -> None:
    """Flask picks the most specific handler by exception class, so HTTP errors and
    store outages are answered by their own handler and only the rest is a 500."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(PyMongoError, _mongo_error)
    app.register_error_handler(redis.exceptions.ConnectionError, _redis_unavailable)
    app.register_error_handler(redis.exceptions.TimeoutError, _redis_unavailable)
    app.register_error_handler(TimeoutError, _timeout)
    app.register_error_handler(BusUnavailable, _bus_unavailable)
    app.register_error_handler(UnknownCursor, _unknown_cursor)
    app.register_error_handler(Exception, _internal_error)
