"""Reads through the read cache (``adapters/read_cache.py``): the view is served from Redis
when it is there, else built from MongoDB and cached. ``X-Cache: hit|miss`` says which."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, request

from skyhive.api.errors import ApiError
from skyhive.api.responses import current_clients, json_bytes


def _response(body: bytes, hit: bool) -> Response:
    resp = Response(body, status=200, headers={"X-Cache": "hit" if hit else "miss"})
    resp.mimetype = "application/json"
    return resp


def cached_document(
    resource: str, doc_id: str, view: Callable[[], Any | None], not_found: ApiError
) -> Response:
    """``view()`` is the document's API view, or None when there is no such document."""

    def load() -> bytes | None:
        found = view()
        return None if found is None else json_bytes(found)

    body, hit = current_clients().read_cache.get(resource, doc_id, load)
    if body is None:
        raise not_found
    return _response(body, hit)


def cached_list(resource: str, view: Callable[[], Any]) -> Response:
    """A list response, cached per query string (parameters parsed before this is called)."""
    query = "&".join(sorted(f"{k}={v}" for k, v in request.args.items(multi=True)))
    body, hit = current_clients().read_cache.get_list(resource, query, lambda: json_bytes(view()))
    return _response(body, hit)
