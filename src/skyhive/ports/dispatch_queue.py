"""The dispatch queue port: pending deliveries, the atomic claim of drones, the journal of
assignments not yet recorded, the active set (``adapters/dispatch_queue.py``, Redis). The
dispatch path writes only this; it never touches the delivery records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from skyhive.domain.dispatch import PendingOrder


class DispatchQueue(Protocol):
    def pending(self, limit: int) -> list[str]:
        """Pending delivery ids, oldest first."""

    def active(self) -> list[str]:
        """Deliveries between assignment and their end."""

    def pending_orders(self, delivery_ids: list[str]) -> tuple[dict[str, PendingOrder], list[str]]:
        """The orders of those still pending, and the pending ids that have none
        (the record rebuilds them); ids no longer pending leave the queue."""

    def fleet_view(
        self, drone_ids: Sequence[str]
    ) -> tuple[dict[str, tuple[float, str]], dict[str, str], dict[str, str]]:
        """Each registered drone's (battery %, flight status), which delivery claims it and
        which alert grounds it (``ports/grounding.py``), at once; a drone outside the
        registry has no state here."""

    def claim_assign(
        self,
        pairs: list[tuple[str, str, dict[str, Any], bytes]],
        commands_stream: str,
        maxlen: int,
    ) -> set[str]:
        """(delivery id, drone id, journal record, command) pairs: each delivery still
        pending and its drone unclaimed is assigned, journaled and its command queued on
        ``commands_stream``, all or nothing. Returns the deliveries assigned."""

    def journal(self, limit: int = 500) -> dict[str, dict[str, Any]]:
        """Assignments made and not yet recorded."""

    def claimed(self, drone_ids: list[str]) -> dict[str, str]:
        """Which of these drones are claimed, and by which delivery."""

    def reconcile(self, delivery_id: str, status: str | None) -> None:
        """Bring the queue in line with the record's ``status`` (None: no record)."""
