"""Envelope validation and hand-off to the bus, shared by MQTT and HTTP ingest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from skyhive.adapters.bus import Bus
from skyhive.adapters.deadletters import DeadLetter, DeadLetters
from skyhive.domain.commands import DroneEvent, parse_event
from skyhive.domain.telemetry import (
    InvalidTelemetry,
    Telemetry,
    parse_telemetry,
    validate_telemetry,
)
from skyhive.wiring import Clients


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
        deadletters: DeadLetters,
        stream: str,
        max_bytes: int,
        events_stream: str = "events",
        urgent_stream: str = "telemetry:urgent",
    ) -> None:
        self._bus = bus
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

    def submit(self, batch: Sequence[RawMessage]) -> IngestResult:
        """Validate, then write good messages to the bus and bad ones to the dead-letter stream.

        Returns only after both writes succeeded, so the caller may acknowledge its input.
        Emergencies are also written, first, to the urgent stream, which the processor
        reads apart from the routine backlog.
        """
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
        good += events
        self._dead.add(bad)
        result.accepted, result.rejected = len(good), len(bad)
        return result


def ingest_for(clients: Clients) -> Ingest:
    s = clients.settings
    return Ingest(
        clients.bus,
        clients.deadletters,
        s.telemetry_stream,
        s.max_message_bytes,
        s.events_stream,
        s.urgent_stream,
    )
