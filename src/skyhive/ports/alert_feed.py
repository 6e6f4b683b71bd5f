"""The live alert feed port: alert changes pushed to whoever watches (the dashboard), at most
once, nothing kept (``adapters/live_state.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class AlertFeed(Protocol):
    def announce_alerts(self, events: Sequence[bytes]) -> None:
        """Alert change events (JSON objects), as one message."""
