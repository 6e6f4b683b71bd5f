"""The delivery billing port: billable deliveries, billing marks and the figures the
overview reports (``adapters/delivery_billing.py``, MongoDB)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class DeliveryBilling(Protocol):
    def billable(self, month: str) -> list[dict[str, Any]]:
        """Deliveries delivered in ``month`` (YYYY-MM) and not billed yet."""

    def mark_billed(self, billed: dict[str, list[str]]) -> int:
        """Invoice id → delivery ids, marked only where none is yet; how many were marked."""

    def unbilled_value(self, month: str) -> tuple[Any, int]:
        """The summed stored ``price_final`` and the count of ``month``'s unbilled deliveries."""

    def created_by_status(self, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
        """Deliveries created in ``[start, end)`` per status: ``count``, ``avg_delivery_s``."""
