"""The API key store port: key records by id, the hash only (``adapters/api_keys_repo.py``:
MongoDB, with a Redis cache every process shares)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class ApiKeyStore(Protocol):
    def insert(self, doc: dict[str, Any]) -> None: ...

    def lookup(self, key_id: str) -> dict[str, Any] | None:
        """The key's record (through the cache); a revoked key's tombstone reads as revoked."""

    def touch(self, key_id: str, now: datetime) -> None:
        """Record a use (at most so often)."""

    def active_admin_exists(self, now: datetime) -> bool: ...
