"""API keys: the record in MongoDB ``api_keys`` (hash only, never the key), and a Redis copy
that every API process checks on each request.

Revocation must reach every API process at once, so no process keeps keys of its own: the
Redis copy is the only cache. A revoke overwrites it with a tombstone, and a process loading
the record writes its copy with ``SET NX``, so a load that raced the revoke can never put a
revoked key back. If Redis is down, the record is read from MongoDB on each request.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from typing import Any

import orjson
import redis
from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database

from skyhive.adapters.mongo import Document, collection, restore_datetimes
from skyhive.adapters.redis_client import RedisClient

log = logging.getLogger(__name__)

CACHE_TTL_S = 300
TOMBSTONE_TTL_S = 3600  # longer than any copy a racing load could still write
LAST_USED_EVERY_S = 60  # last_used_at is a hint: written at most once a minute per key
REVOKED = b"revoked"
DATE_FIELDS = ("created_at", "expires_at", "revoked_at", "last_used_at")
_PUBLIC_FIELDS = ("name", "role", "customer_id", "hash", "expires_at", "revoked_at")


def _cache_key(key_id: str) -> str:
    return f"apikey:{key_id}"


class ApiKeysRepo:
    def __init__(self, db: Database[Document], r: RedisClient) -> None:
        self._c = collection(db, "api_keys")
        self._r = r

    def insert(self, doc: Document) -> None:
        self._c.insert_one(doc)

    def get(self, key_id: str) -> Document | None:
        doc = self._c.find_one({"_id": key_id})
        return restore_datetimes(doc, DATE_FIELDS) if doc else None

    def find(self, include_revoked: bool, limit: int, after: str | None = None) -> list[Document]:
        query: dict[str, Any] = {} if include_revoked else {"revoked_at": None}
        if after is not None:
            query["_id"] = {"$gt": after}
        docs = self._c.find(query, {"hash": 0}).sort("_id", ASCENDING).limit(limit)
        return [restore_datetimes(d, DATE_FIELDS) for d in docs]

    def active_admin_exists(self, now: datetime) -> bool:
        query = {
            "role": "admin",
            "revoked_at": None,
            "$or": [{"expires_at": None}, {"expires_at": {"$gt": now}}],
        }
        # find_one, not count_documents: the embedded server counts no match for a null field.
        return self._c.find_one(query, {"_id": 1}) is not None

    def revoke(self, key_id: str, now: datetime) -> Document | None:
        """The record as revoked (first revocation time kept), or None if there is none."""
        doc = self._c.find_one_and_update(
            {"_id": key_id, "revoked_at": None},
            {"$set": {"revoked_at": now}},
            return_document=ReturnDocument.AFTER,
        ) or self._c.find_one({"_id": key_id})
        self._r.set(_cache_key(key_id), REVOKED, ex=TOMBSTONE_TTL_S)
        return restore_datetimes(doc, DATE_FIELDS) if doc else None

    def lookup(self, key_id: str) -> Document | None:
        """What authentication needs of a key, Redis first; None when unknown or revoked."""
        try:
            cached = self._r.get(_cache_key(key_id))
        except redis.RedisError as exc:
            log.warning("API key cache unavailable, reading MongoDB: %s", exc)
            return self._from_mongo(key_id)
        if cached == REVOKED:
            return None
        if cached is not None:
            return _decode(cached)
        doc = self._from_mongo(key_id)
        if doc is not None and doc.get("revoked_at") is None:
            with contextlib.suppress(redis.RedisError):
                self._r.set(_cache_key(key_id), _encode(doc), ex=CACHE_TTL_S, nx=True)
        return doc

    def _from_mongo(self, key_id: str) -> Document | None:
        doc = self._c.find_one({"_id": key_id}, {f: 1 for f in _PUBLIC_FIELDS})
        if doc is None or doc.get("revoked_at") is not None:
            return None
        return restore_datetimes(doc, DATE_FIELDS)

    def touch(self, key_id: str, now: datetime) -> None:
        """Record the key as used, at most once a minute (across processes)."""
        try:
            if not self._r.set(f"apikey:used:{key_id}", 1, ex=LAST_USED_EVERY_S, nx=True):
                return
        except redis.RedisError:
            return
        self._c.update_one({"_id": key_id}, {"$set": {"last_used_at": now}})


def _encode(doc: Document) -> bytes:
    fields = {f: doc.get(f) for f in _PUBLIC_FIELDS}
    expires = fields["expires_at"]
    fields["expires_at"] = expires.isoformat() if isinstance(expires, datetime) else None
    return orjson.dumps(fields)


def _decode(raw: bytes | str) -> Document:
    doc: Document = orjson.loads(raw)
    if doc.get("expires_at"):
        doc["expires_at"] = datetime.fromisoformat(doc["expires_at"])
    return doc
