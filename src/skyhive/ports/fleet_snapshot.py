"""The fleet snapshot port: every drone's live state at once (``adapters/live_state.py``)."""

from __future__ import annotations

from typing import Any, Protocol


class FleetSnapshot(Protocol):
    def all(self) -> list[dict[str, Any]]: ...
