"""The active-alerts port: each drone's active alert per type, what the alert rules fold their
findings against without asking the alert store (``adapters/active_alerts.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from skyhive.domain.alert_lifecycle import ActiveAlert, Key


@dataclass(frozen=True, slots=True)
class AlertSwap:
    """Make ``new`` (None: none) the drone's active alert of ``type``, only if ``expected`` is
    still the active one: a person may have resolved it meanwhile, and a resolved alert must
    not come back to life; one they acknowledged stays acknowledged."""

    drone_id: str
    type: str
    expected: ActiveAlert | None
    new: ActiveAlert | None


class ActiveAlerts(Protocol):
    def get_many(self, drone_ids: Sequence[str]) -> dict[Key, ActiveAlert]:
        """The active alerts of these drones, in one round trip."""

    def get(self, drone_id: str, alert_type: str) -> ActiveAlert | None: ...

    def swap(self, swaps: Sequence[AlertSwap]) -> None: ...

    def put(self, drone_id: str, alert_type: str, active: ActiveAlert) -> None:
        """Unconditionally (a person acknowledged it)."""

    def remove(self, drone_id: str, alert_type: str) -> None: ...
