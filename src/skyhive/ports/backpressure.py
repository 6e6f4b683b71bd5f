"""The backlog control port: trim the bus and decide on backpressure, one process at a time
(``adapters/stream_trimmer.py``: Redis streams)."""

from __future__ import annotations

from typing import Protocol

from skyhive.domain.backpressure import Backpressure, TrimPolicy


class BacklogControl(Protocol):
    @property
    def policy(self) -> TrimPolicy: ...

    def run_once(self) -> Backpressure | None:
        """One trim pass and verdict, shared with every process, if no other process is
        running one (else None)."""

    def read_state(self) -> Backpressure:
        """The last verdict any process shared."""
