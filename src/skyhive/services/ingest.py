"""Envelope validation and hand-off to the bus, shared by MQTT and HTTP ingest.

While the bus is over its backlog limit (``services/stream_trimmer.py``) ingest is held
back: ``submit`` raises ``IngestPaused`` (HTTP answers 503 with Retry-After), and the gateway
stops reading from the broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from skyhive.domain.backpressure import Backpressure
from skyhive.domain.commands import DroneEvent, parse_event
from skyhive.domain.telemetry import (
    InvalidTelemetry,
    Telemetry,
    parse_telemetry,
    validate_telemetry,
)
from skyhive.ports.bus import Bus
from skyhive.ports.deadletters import DeadLetter, DeadLetterSink
from skyhive.services.stream_trimmer import IngestGate


class IngestPaused(Exception):
    """The bus holds too much unprocessed work: retry after ``retry_after_s``."""

    def __init__(self, state: Backpressure, retry_after_s: int) -> None:
        super().__init__(
            f"ingest is held back: {state.stream} holds {state.backlog} entries not yet "
            f"processed (limit {state.limit}); retry in {retry_after_s}s"
        )
        self.state = state
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One incoming message: raw bytes, or an already-decoded JSON value (HTTP arrays)."""

    body: bytes | object
    source: str
    topic_drone_id: str | None = None
    kind: str = "telemetry"  # or "event": a delivery event reported by a drone

    def raw_bytes(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        try:
            return orjson.dumps(self.body)
        except TypeError:
            return repr(self.body).encode()


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    rejected: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (index in batch, reason)


def encode_for_bus(t: Telemetry) -> bytes:
    return orjson.dumps(t.model_dump(mode="json", exclude_none=True))


class Ingest:
    def __init__(
        self,
        bus: Bus,
        deadletters: DeadLetterSink,
        stream: str,
        max_bytes: int,
        events_stream: str = "events",
        urgent_stream: str = "telemetry:urgent",
        gate: IngestGate | None = None,
    ) -> None:
        self._bus = bus
        self._gate = gate
        self._dead = deadletters
        self._stream = stream
        self._urgent_stream = urgent_stream
        self._events_stream = events_stream
        self._max_bytes = max_bytes

    def validate(self, msg: RawMessage) -> Telemetry:
        if isinstance(msg.body, bytes):
            return parse_telemetry(msg.body, msg.topic_drone_id, self._max_bytes)
        return validate_telemetry(msg.body, msg.topic_drone_id)

    def validate_event(self, msg: RawMessage) -> DroneEvent:
        body = msg.body
        if isinstance(body, bytes):
            if len(body) > self._max_bytes:
                raise InvalidTelemetry(f"oversize: {len(body)} bytes > {self._max_bytes}")
            try:
                body = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidTelemetry(f"not JSON: {exc}") from None
        return parse_event(body, msg.topic_drone_id)

    def held_back(self, ahead: int = 0) -> Backpressure | None:
        """The backlog state while ingest must hold back (counting ``ahead`` entries about
        to be written), else None (no gate: never)."""
        return self._gate.held_back(ahead) if self._gate is not None else None

    def submit(self, batch: Sequence[RawMessage], *, hold_back: bool = True) -> IngestResult:
        """Validate, then write good messages to the bus and bad ones to the dead-letter stream.

        Returns only after both writes succeeded, so the caller may acknowledge its input.
        Emergencies are also written, first, to the urgent stream, which the processor
        reads apart from the routine backlog. Raises ``IngestPaused`` while ingest is held
        back, unless ``hold_back`` is False (messages already taken from the broker).
        """
        if hold_back and self._gate is not None and (state := self._gate.held_back(len(batch))):
            raise IngestPaused(state, self._gate.retry_after_s)
        result = IngestResult()
        good: list[tuple[str, bytes]] = []
        urgent: list[tuple[str, bytes]] = []
        events: list[tuple[str, bytes]] = []
        bad: list[DeadLetter] = []
        for i, msg in enumerate(batch):
            try:
                if msg.kind == "event":
                    ev = self.validate_event(msg)
                    events.append((ev.drone_id, orjson.dumps(ev.model_dump(mode="json"))))
                else:
                    t = self.validate(msg)
                    good.append((t.drone_id, encode_for_bus(t)))
                    if t.is_emergency:
                        urgent.append(good[-1])
            except InvalidTelemetry as exc:
                bad.append(DeadLetter(exc.reason, msg.raw_bytes(), msg.source))
                result.errors.append((i, exc.reason))
        self._bus.publish(self._urgent_stream, urgent)
        self._bus.publish(self._stream, good)
        self._bus.publish(self._events_stream, events)
        if self._gate is not None:
            self._gate.wrote(len(good))
        good += events
        self._dead.add(bad)
        result.accepted, result.rejected = len(good), len(bad)
        return result
