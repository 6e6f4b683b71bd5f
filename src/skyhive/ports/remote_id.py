"""The live fleet as Remote ID reads it: the drones inside a view and their latest states
(``adapters/live_state.LiveState``: Redis GEO and the per-drone hashes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from skyhive.domain.remote_id import View


class LiveInView(Protocol):
    def in_view(self, view: View) -> list[str]:
        """Ids of the drones whose indexed position may be inside ``view`` (a superset: the
        caller checks each state's own position)."""

    def get(self, drone_id: str) -> dict[str, Any] | None: ...

    def get_many(self, drone_ids: Sequence[str]) -> list[dict[str, Any] | None]: ...
