"""The reminder schedule port: when each open critical alert is reminded next, and how many
reminders it had (``adapters/reminder_schedule.py``). A due reminder is leased, so a notifier
dying while it sends loses nothing, and counted only once every channel is done with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class ReminderSchedule(Protocol):
    def schedule(self, alert_id: str, due: float, start_ms: int) -> bool:
        """The first reminder at ``due`` (epoch s), unless one is scheduled already; the
        count is ``start_ms:0``."""

    def claim_due(self, now: float, lease_until: float, limit: int) -> list[tuple[str, str]]:
        """Due reminders (alert id, ``start:sent``), leased until ``lease_until``."""

    def reminded(self, alert_id: str, count: str, new_count: str, next_due: float) -> bool:
        """Count a reminder and set the next, unless the schedule changed since ``count``."""

    def release(self, alert_ids: Sequence[str], due: float) -> None:
        """Leased reminders due again at ``due`` (their sender stops)."""

    def drop(self, alert_id: str) -> None: ...
