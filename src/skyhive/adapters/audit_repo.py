"""The audit log in MongoDB ``audit``: one document per operator or admin write.

``_id`` is the request id, so a retried write of the same record is a no-op. It never holds
a secret: the API records who (key id, name, role), what (operation, target) and how it went,
never request bodies or headers.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from skyhive.adapters.mongo import Document, collection, restore_datetimes


class AuditRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._c = collection(db, "audit")

    def record(self, entry: Document) -> None:
        with contextlib.suppress(DuplicateKeyError):
            self._c.insert_one(entry)

    def find(
        self,
        *,
        key_id: str | None = None,
        action: str | None = None,
        target: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Document]:
        """Newest first."""
        query: dict[str, Any] = {}
        for name, value in (
            ("key_id", key_id),
            ("action", action),
            ("target", target),
            ("outcome", outcome),
        ):
            if value is not None:
                query[name] = value
        window: dict[str, datetime] = {}
        if since is not None:
            window["$gte"] = since
        if until is not None:
            window["$lt"] = until
        if window:
            query["at"] = window
        docs = self._c.find(query).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [restore_datetimes(d, ("at",)) for d in docs]
