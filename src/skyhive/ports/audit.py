"""The audit log port: one entry per write made with a key (``adapters/audit_repo.py``)."""

from __future__ import annotations

from typing import Any, Protocol


class AuditLog(Protocol):
    def record(self, entry: dict[str, Any]) -> None: ...
