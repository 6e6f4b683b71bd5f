"""The delivery record port: the source of truth of every delivery and its timeline
(``adapters/delivery_records.py``, MongoDB), keeping the dispatch queue in step."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from skyhive.domain.deliveries import Delivery, Flight
from skyhive.domain.dispatch import PendingOrder


class DeliveryRecords(Protocol):
    def insert(self, delivery: Delivery) -> tuple[Delivery, bool]:
        """Store a new delivery and queue it for dispatch; with its id already taken (the
        same order id), the existing one. Returns (delivery, created)."""

    def get(self, delivery_id: str) -> Delivery | None: ...

    def find(
        self,
        status: str | None = None,
        customer_id: str | None = None,
        drone_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Delivery]:
        """Newest first (then by id); ``before`` pages on."""

    def transition(
        self,
        delivery_id: str,
        new_status: str,
        at: datetime,
        note: str,
        fields: dict[str, Any] | None = None,
    ) -> Delivery:
        """Move a delivery to ``new_status`` if the lifecycle allows it (else
        ``TransitionRefused``), appending to its timeline, with ``fields`` (named as on
        :class:`Delivery`) set too; returns the delivery after."""

    def flights(self, delivery_ids: list[str]) -> dict[str, Flight]:
        """What watching these deliveries needs (not their timeline), by id."""

    def set_fields_many(self, fields_by_id: dict[str, dict[str, Any]]) -> None:
        """Set fields (named as on :class:`Delivery`) of many deliveries at once."""

    def requeue_pending(self) -> int:
        """Queue the pending deliveries the dispatch queue lost track of; how many."""

    def restore_orders(self, delivery_ids: list[str]) -> dict[str, PendingOrder]:
        """Orders rebuilt for queued deliveries whose summary is missing (those still
        pending)."""

    def record_journal(
        self, records: dict[str, dict[str, Any]]
    ) -> dict[str, tuple[str, str | None]]:
        """Record journaled assignments and drop them from the journal; returns those lost
        to a concurrent change: delivery id → (drone, status now), drones to recall."""


class DeliveryNotes(Protocol):
    def add_note(self, delivery_id: str, at: datetime, note: str) -> None:
        """Append ``note`` to the delivery's timeline under its current status (once: the
        same note again is ignored); KeyError for an unknown delivery."""
