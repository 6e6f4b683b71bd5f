"""The grounding port: which drones are kept out of dispatch, and by which alerts
(``adapters/grounding.py``, Redis). MongoDB's alerts are the truth it is rebuilt from
(``AlertEngine.rebuild_grounding``); this is what the dispatcher reads on its hot path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Grounding(Protocol):
    def set(self, changes: Sequence[tuple[str, str, bool]]) -> None:
        """(drone id, alert id, grounds): add the alert to the drone's grounding alerts, or
        take it away (the drone flies again when none is left). Idempotent."""

    def of_many(self, drone_ids: Sequence[str]) -> dict[str, list[str]]:
        """The grounded ones of these drones, with the alerts that ground them."""

    def all(self) -> dict[str, list[str]]:
        """Every grounded drone, with the alerts that ground it."""
