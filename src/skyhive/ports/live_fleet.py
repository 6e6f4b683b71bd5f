"""The live fleet port, read side: each drone's latest state and where the drones are
(``adapters/live_state.LiveState``), as dispatching, tracking and ordering read it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class LiveFleet(Protocol):
    def get(self, drone_id: str) -> dict[str, Any] | None:
        """The drone's latest state, None if it was never heard."""

    def get_many(self, drone_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """States in the order asked, in one round trip."""

    def nearby_many(
        self, points: Sequence[tuple[float, float]], radius_km: float, limit: int
    ) -> list[list[tuple[str, float]]]:
        """Per (lat, lon): drone ids within ``radius_km``, nearest first, with km; at once."""

    def count_near(
        self, points: Sequence[tuple[float, float]], radius_km: float, cap: int
    ) -> list[int]:
        """Per (lat, lon): how many drones are within ``radius_km``, up to ``cap``; at once."""
