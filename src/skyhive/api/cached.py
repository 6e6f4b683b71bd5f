"""Reads through the read cache (``adapters/read_cache.py``): the view is served from Redis
when it is there, else built from MongoDB and cached. ``X-Cache: hit|miss`` says which.

An entry holds a view for everyone who may see it, so what a customer key may see is
decided around the cache, never inside it: a document is checked against the key's customer
after it is read, and a list is cached per effective query, the filters the key imposes
included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from flask import Response, request
from pydantic import BaseModel

from skyhive.api.errors import ApiError
from skyhive.api.responses import current_clients, json_bytes


def _response(body: bytes, hit: bool) -> Response:
    resp = Response(body, status=200, headers={"X-Cache": "hit" if hit else "miss"})
    resp.mimetype = "application/json"
    return resp


def cached_document(
    resource: str,
    doc_id: str,
    view: Callable[[], Any | None],
    not_found: ApiError,
    owner: str | None = None,
) -> Response:
    """``view()`` is the document's API view, or None when there is no such document.
    With ``owner`` (a customer key's customer), a document whose ``customer_id`` is another
    customer's is ``not_found`` too: the same answer as a missing one, so ids can't be probed."""

    def load() -> bytes | None:
        found = view()
        return None if found is None else json_bytes(found)

    body, hit = current_clients().read_cache.get(resource, doc_id, load)
    if body is None or (owner is not None and orjson.loads(body).get("customer_id") != owner):
        raise not_found
    return _response(body, hit)


def cached_list(
    resource: str,
    view: Callable[[], Any],
    query: BaseModel | None = None,
    forced: Mapping[str, str | None] | None = None,
) -> Response:
    """A list response, cached per effective query: the validated ``query`` model (so
    ``?limit=100`` and no ``limit`` share an entry), or without one the query string as sent;
    plus ``forced``, the filters the caller's key imposes whatever the query says (a customer
    key's own customer), so two callers sending the same URL never share an entry they may
    not both see."""
    params: Iterable[tuple[str, Any]]
    if query is not None:
        params = query.model_dump(mode="json", exclude_none=True).items()
    else:
        params = request.args.items(multi=True)
    parts = [f"{k}={v}" for k, v in params]
    parts += [f"forced.{k}={v}" for k, v in (forced or {}).items() if v is not None]
    key = "&".join(sorted(parts))
    body, hit = current_clients().read_cache.get_list(resource, key, lambda: json_bytes(view()))
    return _response(body, hit)
