"""The customer directory port, as ordering sees it (``adapters/customers_repo.py``)."""

from __future__ import annotations

from typing import Protocol


class CustomerDirectory(Protocol):
    def exists(self, customer_id: str) -> bool: ...
