"""Telemetry history in MongoDB ``telemetry``, one document per reading, ``_id`` = drone:seq."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from skyhive.adapters.mongo import Document

DUPLICATE_KEY = 11000


def _window(drone_id: str, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    query: dict[str, Any] = {"drone_id": drone_id}
    window: dict[str, datetime] = {}
    if since:
        window["$gte"] = since
    if until:
        window["$lt"] = until
    if window:
        query["ts"] = window
    return query


class TelemetryRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._c = db.telemetry

    def insert(self, docs: Sequence[Document]) -> tuple[int, dict[int, str]]:
        """Insert idempotently: re-inserting an ``_id`` is a no-op.

        Returns how many were new, and the documents the server refused for their content
        (index → message), so one bad document never blocks the rest. Connection errors raise.
        """
        if not docs:
            return 0, {}
        try:
            return len(self._c.insert_many(list(docs), ordered=False).inserted_ids), {}
        except BulkWriteError as exc:
            refused = {
                int(e["index"]): str(e.get("errmsg", "write refused"))
                for e in exc.details.get("writeErrors", [])
                if e.get("code") != DUPLICATE_KEY
            }
            return int(exc.details.get("nInserted", 0)), refused

    def history(
        self,
        drone_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Document]:
        query = _window(drone_id, since, until)
        return list(self._c.find(query, {"location": 0}).sort("ts", DESCENDING).limit(limit))

    def series(
        self, drone_id: str, since: datetime, until: datetime | None, fields: Sequence[str]
    ) -> list[Document]:
        """``ts`` and ``fields`` of every reading in the window, unordered: only what a
        chart needs, for downsampling (``domain/downsample.py``)."""
        projection = {"_id": 0, "ts": 1, **dict.fromkeys(fields, 1)}
        return list(self._c.find(_window(drone_id, since, until), projection))

    def count_for(self, drone_id: str) -> int:
        return self._c.count_documents({"drone_id": drone_id})
