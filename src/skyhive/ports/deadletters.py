"""The dead-letter port: where a consumer puts what it cannot process
(``adapters/deadletters.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    raw: bytes
    source: str  # e.g. "mqtt:skyhive/drones/x/telemetry", "http", "processor"


class DeadLetterSink(Protocol):
    def add(self, letters: Sequence[DeadLetter]) -> None: ...
