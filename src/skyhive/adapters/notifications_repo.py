"""Notification attempts in MongoDB ``alert_notifications``: one document per attempt to tell
a channel about an alert change or reminder.

The attempt that ends a (message, channel) pair — ``sent``, ``throttled`` or ``gave_up`` — is
stored under a deterministic id (``ports/notifications.record_id``), so it is written once
however often the message is delivered again, and the notifier checks it before sending: a
message redelivered after a crash is not sent a second time once its sending is recorded. Failed attempts before
the last have ordinary ids: each is a real attempt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from skyhive.adapters.mongo import Document, collection, restore_datetimes
from skyhive.adapters.mongo_indexes import ensure_indexes
from skyhive.ports.notifications import FINAL_OUTCOMES, Outcome

COLLECTION = "alert_notifications"


class NotificationsRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._db = db
        self._c = collection(db, COLLECTION)

    def ensure_indexes(self) -> None:
        ensure_indexes(self._db, COLLECTION)

    def was_sent(self, alert_id: str, channel: str) -> bool:
        """Whether this channel was sent any message about the alert."""
        query = {"alert_id": alert_id, "channel": channel, "outcome": "sent"}
        return self._c.find_one(query, {"_id": 1}) is not None

    def record(
        self,
        alert_id: str,
        channel: str,
        change: str,
        outcome: Outcome,
        attempt: int,
        error: str | None = None,
        *,
        final_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> bool:
        """Store one attempt. A final outcome needs ``final_id``; returns False if that record
        exists already (the message was finished before: a redelivery)."""
        if (outcome in FINAL_OUTCOMES) != (final_id is not None):
            raise ValueError(f"outcome {outcome!r} and final_id {final_id!r} do not go together")
        doc: Document = {
            "alert_id": alert_id,
            "channel": channel,
            "change": change,
            "at": datetime.now(UTC),
            "outcome": outcome,
            "attempt": attempt,
            "error": error,
            **(extra or {}),
        }
        if final_id is not None:
            doc["_id"] = final_id
        try:
            self._c.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def for_alert(self, alert_id: str) -> list[Document]:
        """Every attempt for an alert, oldest first: ``_id``, ``alert_id``, ``channel``,
        ``change``, ``at`` (a UTC datetime), ``outcome``, ``attempt``, ``error``, and
        ``reminder`` (its number) for reminders and escalations. ``alerts_repo.serialize``
        makes one JSON-ready."""
        docs = self._c.find({"alert_id": alert_id}).sort(
            [("at", ASCENDING), ("attempt", ASCENDING)]
        )
        return [restore_datetimes(doc, ("at",)) for doc in docs]
