"""The clock port: services ask it for the time instead of the system, so tests can move time
instead of waiting for it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, UTC, timezone-aware."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes back (for intervals)."""
