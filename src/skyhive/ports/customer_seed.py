"""The customer seeding port: create customers that do not exist yet, never overwriting
(``adapters/customers_repo.py``)."""

from __future__ import annotations

from typing import Any, Protocol


class CustomerSeed(Protocol):
    def upsert_many(self, docs: list[dict[str, Any]]) -> int:
        """Insert the documents whose ``_id`` is new; returns how many were created."""
