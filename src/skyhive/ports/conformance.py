"""The conformance port: the declared flights the processor checks readings against, and
what it remembers of each drone's conformance (``adapters/conformance_store.py``, Redis)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from skyhive.domain.conformance import Declaration, Watch


class Declarations(Protocol):
    def declare(self, declarations: Sequence[Declaration]) -> None:
        """Make these the active declarations of their drones (one write)."""

    def read(self, drone_ids: Sequence[str]) -> dict[str, tuple[Declaration, Watch | None]]:
        """The active declaration of each of these drones that has one, and what was
        remembered of its conformance (one round trip)."""

    def save(self, watches: Mapping[str, Watch]) -> None:
        """Remember these drones' conformance (one write)."""

    def drop(self, drone_id: str, delivery_id: str) -> None:
        """Forget the drone's declaration, if it is still ``delivery_id``'s."""

    def silent(self, before: float) -> dict[str, float]:
        """The drones with an active declaration not heard from since ``before`` (epoch s,
        the server's clock): drone → when it was last heard (0 if never)."""

    def take_sweep(self, hold_ms: int) -> bool:
        """Whether this process runs the stale-telemetry sweep now (one at a time)."""

    def statuses(self, delivery_ids: Sequence[str]) -> dict[str, str | None]:
        """Each delivery's status as the dispatch queue knows it (one read)."""
