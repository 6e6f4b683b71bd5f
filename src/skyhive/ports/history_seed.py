"""What writing simulated history needs of the stores beyond the other ports: records whose
whole life is already known, stored only where their id is free (``adapters/delivery_records``,
``adapters/alerts_repo``), the fleet registry and the customers as lists
(``adapters/fleet_repo``, ``adapters/customers_repo``), and whether history is already there
(``adapters/telemetry_repo``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from skyhive.domain.alerts import Alert
from skyhive.domain.deliveries import Delivery
from skyhive.domain.fleet import DroneSpec


class FinishedDeliveries(Protocol):
    def insert_missing(self, deliveries: Sequence[Delivery]) -> int:
        """Store those whose id is free, as their record would be; returns how many."""

    def find(
        self,
        status: str | None = None,
        customer_id: str | None = None,
        drone_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Delivery]: ...


class FinishedAlerts(Protocol):
    def insert_missing(self, alerts: Sequence[Alert]) -> int:
        """Store those whose id is free, as the alert store keeps them; returns how many."""


class FleetRoster(Protocol):
    def list(self, status: str | None = None, limit: int = 1000) -> list[DroneSpec]:
        """By id."""

    def ensure_registered(self, specs: Sequence[DroneSpec]) -> int:
        """Register those not known yet; returns how many."""


class CustomerRoster(Protocol):
    def find(self, email: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """By id."""

    def upsert_many(self, docs: list[dict[str, Any]]) -> int: ...


class ReadingsLookup(Protocol):
    def history(
        self,
        drone_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """A drone's readings, newest first."""
