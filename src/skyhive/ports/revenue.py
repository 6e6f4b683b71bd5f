"""The revenue report port: invoiced revenue grouped by period (``adapters/invoices_repo.py``)."""

from __future__ import annotations

from typing import Any, Protocol


class RevenueReport(Protocol):
    def revenue_by(self, group_by: str) -> list[dict[str, Any]]:
        """One row per ``group_by`` value (e.g. ``month``), with its ``revenue``."""
