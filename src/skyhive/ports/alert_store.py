"""The alert store port: alerts by their deterministic ids (``adapters/alerts_repo.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from skyhive.domain.alert_lifecycle import AlertUpdate
from skyhive.domain.alerts import Alert


class AlertStore(Protocol):
    def apply(self, updates: Sequence[AlertUpdate]) -> None:
        """Upsert each update's alert (a replayed update changes nothing new)."""

    def get(self, alert_id: str) -> Alert | None: ...

    def get_many(self, ids: Sequence[str]) -> list[Alert]: ...

    def grounding(self) -> list[Alert]:
        """The alerts that ground their drones (``Alert.grounds``)."""

    def list(
        self,
        state: str | None = None,
        drone_id: str | None = None,
        limit: int = 100,
        severity: str | None = None,
        alert_type: str | None = None,
        since: datetime | None = None,
        before: str | None = None,
    ) -> list[Alert]:
        """Newest opened first (then by id); ``before`` pages on."""

    def count_by_severity(self, state: str) -> dict[str, int]: ...

    def change_state(
        self, alert_id: str, from_states: Sequence[str], fields: dict[str, Any]
    ) -> Alert | None:
        """Set ``fields`` if the alert is in one of ``from_states``; the changed alert, or
        None when it is not (missing, or in another state)."""
