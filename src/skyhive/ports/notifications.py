"""The notification log port: every attempt to tell a channel about an alert, the final one
under a deterministic id (``adapters/notifications_repo.py``)."""

from __future__ import annotations

from typing import Any, Literal, Protocol

Outcome = Literal["sent", "failed", "throttled", "gave_up"]
FINAL_OUTCOMES: tuple[Outcome, ...] = ("sent", "throttled", "gave_up")


def record_id(alert_id: str, occurrence: str, channel: str) -> str:
    """The id of the final record of one message to one channel. ``occurrence`` names the
    message among the alert's: its change and when it happened, or the reminder number."""
    return f"{alert_id}|{occurrence}|{channel}"


class NotificationLog(Protocol):
    def ensure_indexes(self) -> None: ...

    def was_sent(self, alert_id: str, channel: str) -> bool:
        """Whether this channel was sent any message about the alert."""

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
        """Store one attempt. A final outcome needs ``final_id``; returns False if that
        record exists already (the message was finished before: a redelivery)."""
