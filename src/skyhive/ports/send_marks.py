"""The send marks port: which messages are done, and the throttle slots, shared by every
notifier (``adapters/send_marks.py``). Checked before every send, so kept where a check costs
little and where the stream entries that could be replayed live."""

from __future__ import annotations

from typing import Protocol


class SendMarks(Protocol):
    def is_done(self, record_id: str) -> bool: ...

    def mark_done(self, record_id: str) -> None: ...

    def take_slot(self, slot: str, record_id: str, ttl_ms: int, *, force: bool = False) -> bool:
        """Take the throttle ``slot`` for ``ttl_ms`` for this message; True if it holds it
        (took it, or held it already: a redelivery is not throttled by itself). ``force``
        takes it whoever holds it."""
