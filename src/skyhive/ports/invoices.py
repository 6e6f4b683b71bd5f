"""The invoice store port, as billing writes it (``adapters/invoices_repo.py``, MongoDB)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from skyhive.domain.billing import Invoice


class InvoiceStore(Protocol):
    def insert_new(self, invoices: list[Invoice], currency: str) -> set[str]:
        """Insert; one whose id exists already is left as it is. Returns the ids inserted."""

    def billed_deliveries(
        self, period: str, invoice_ids: list[str] | None = None
    ) -> dict[str, list[str]]:
        """Invoice id → the deliveries it bills, for the invoices of ``period``."""

    def get(self, invoice_id: str) -> dict[str, Any] | None: ...

    def pay(self, invoice_id: str, payment: dict[str, Any], at: datetime) -> dict[str, Any] | None:
        """Record the payment of an unpaid invoice (``AlreadyPaid`` otherwise); None if there
        is no such invoice."""

    def mark_overdue(self, now: datetime) -> list[str]:
        """Pending invoices past their due date become ``overdue``; returns their ids."""
